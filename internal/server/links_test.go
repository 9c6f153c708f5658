package server

import (
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// linkOf seals a link to node (of kind) for u and returns the create request, the link and the
// visitor's keys.
func (u *user) linkOf(node coffer.NodeID, kind format.Kind, password []byte) (api.LinkCreateRequest, *format.Link, *format.LinkKeys) {
	u.e.t.Helper()
	id, secret := format.NewLinkID(), format.NewLinkSecret()
	var flags uint8
	var kdf format.KDFParams
	if password != nil {
		flags, kdf = format.LinkFlagPassword, cheapKDF()
	}
	keys := format.DeriveLinkKeys(secret, password, kdf)
	fl, err := format.SealLink(id, u.tree(), node, kind, flags, kdf, keys, u.keys[node], u.signer)
	if err != nil {
		u.e.t.Fatal(err)
	}
	return api.LinkCreateRequest{Record: fl.Marshal(), Verifier: keys.Auth.Public().(ed25519.PublicKey)}, fl, keys
}

func linkPath(fl *format.Link, rest string) string {
	return "/v1/links/" + hex.EncodeToString(fl.ID[:]) + rest
}

// open runs challenge + open with keys and returns the status, error and response.
func (e *env) open(fl *format.Link, keys *format.LinkKeys) (int, api.Error, api.LinkOpenResponse) {
	e.t.Helper()
	var ch api.LinkChallengeResponse
	if st, ae := e.call("POST", linkPath(fl, "/challenge"), "", nil, &ch); st != 200 {
		return st, ae, api.LinkOpenResponse{}
	}
	sig := ed25519.Sign(keys.Auth, format.LinkAuthMessage(fl.ID, [32]byte(ch.Challenge)))
	var resp api.LinkOpenResponse
	st, ae := e.call("POST", linkPath(fl, "/open"), "", api.LinkOpenRequest{Challenge: ch.Challenge, Signature: sig}, &resp)
	return st, ae, resp
}

func TestLinkCreateValidation(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	docs := alice.folder(alice.root, "docs")
	f := alice.file(docs.Node, "a.txt")
	alice.commit(docs, f)

	good, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
	var info api.LinkInfo
	if st, ae := e.call("POST", "/v1/links", alice.token, good, &info); st != 200 {
		t.Fatalf("create: %d %+v", st, ae)
	}
	if info.Node != docs.Node || info.Password || info.Downloads != 0 {
		t.Fatalf("info %+v", info)
	}
	st, ae := e.call("POST", "/v1/links", alice.token, good, nil)
	wantErr(t, st, ae, http.StatusConflict, api.CodeExists)

	cases := map[string]func() (string, api.LinkCreateRequest){
		"garbage record": func() (string, api.LinkCreateRequest) {
			r := good
			r.Record = []byte("CFL1 nonsense")
			return alice.token, r
		},
		"flipped signature": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
			r.Record[len(r.Record)-1] ^= 1
			return alice.token, r
		},
		"short verifier": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
			r.Verifier = r.Verifier[:16]
			return alice.token, r
		},
		"expiry in the past": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
			r.Expires = e.clock.Now().Add(-time.Minute).Unix()
			return alice.token, r
		},
		"negative max downloads": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
			r.MaxDownloads = -1
			return alice.token, r
		},
		"kind mismatch": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(f.Node, format.KindFolder, nil)
			return alice.token, r
		},
		"alice's record posted by bob": func() (string, api.LinkCreateRequest) {
			r, _, _ := alice.linkOf(docs.Node, format.KindFolder, nil)
			return bob.token, r
		},
	}
	for name, mk := range cases {
		tok, req := mk()
		if st, ae := e.call("POST", "/v1/links", tok, req, nil); st != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, st, ae.Code)
		}
	}
	// Bob linking a node of alice's tree with his own key: refused (not his tree), and naming
	// it in his own tree finds nothing.
	keys := format.DeriveLinkKeys(format.NewLinkSecret(), nil, format.KDFParams{})
	stolen, err := format.SealLink(format.NewLinkID(), alice.tree(), docs.Node, format.KindFolder, 0, format.KDFParams{},
		keys, format.NewNodeKey(), bob.signer)
	if err != nil {
		t.Fatal(err)
	}
	sreq := api.LinkCreateRequest{Record: stolen.Marshal(), Verifier: keys.Auth.Public().(ed25519.PublicKey)}
	if st, _ := e.call("POST", "/v1/links", bob.token, sreq, nil); st != http.StatusBadRequest {
		t.Errorf("bob linking alice's node: %d", st)
	}
	bob.keys[docs.Node] = format.NewNodeKey()
	mine, _, _ := bob.linkOf(docs.Node, format.KindFolder, nil)
	if st, _ := e.call("POST", "/v1/links", bob.token, mine, nil); st != http.StatusNotFound {
		t.Errorf("bob linking a node absent from his tree: %d", st)
	}
	// A node that does not exist: 404. No session: 401.
	alice.keys[coffer.NodeID{9}] = format.NewNodeKey()
	ghost, _, _ := alice.linkOf(coffer.NodeID{9}, format.KindFile, nil)
	st, ae = e.call("POST", "/v1/links", alice.token, ghost, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
	st, ae = e.call("POST", "/v1/links", "", good, nil)
	wantErr(t, st, ae, http.StatusUnauthorized, api.CodeUnauthorized)

	// Revocation is the owner's only.
	st, ae = e.call("DELETE", "/v1/links/"+info.ID, bob.token, nil, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
	var list api.LinksResponse
	if st, _ := e.call("GET", "/v1/links", bob.token, nil, &list); st != 200 || len(list.Links) != 0 {
		t.Fatalf("bob's links: %d %d", st, len(list.Links))
	}
}

func TestLinkAccessRules(t *testing.T) {
	e := newEnv(t)
	alice := e.signup("alice")
	b1, _, _ := alice.upload([]byte("inside blob"))
	b2, _, _ := alice.upload([]byte("outside blob"))
	docs := alice.folder(alice.root, "docs")
	sub := alice.folder(docs.Node, "sub")
	in := alice.file(sub.Node, "in.txt", b1.Blob)
	other := alice.folder(alice.root, "other")
	out := alice.file(other.Node, "out.txt", b2.Blob)
	alice.commit(docs, sub, in, other, out)

	req, fl, keys := alice.linkOf(docs.Node, format.KindFolder, nil)
	req.MaxDownloads = 3
	if st, ae := e.call("POST", "/v1/links", alice.token, req, nil); st != 200 {
		t.Fatalf("create: %d %+v", st, ae)
	}
	st, ae, resp := e.open(fl, keys)
	if st != 200 {
		t.Fatalf("open: %d %+v", st, ae)
	}
	if resp.Owner != "alice" || len(resp.Node) == 0 || resp.Token == "" {
		t.Fatalf("open response %+v", resp)
	}
	get := func(path, token string) int {
		r := e.request("GET", path, token, nil)
		r.Body.Close()
		return r.StatusCode
	}
	tree := alice.tree().String()
	for _, c := range []struct {
		path string
		want int
	}{
		{"/trees/" + tree + "/folders/" + docs.Node.String(), 200},
		{"/trees/" + tree + "/folders/" + sub.Node.String(), 200},
		{"/trees/" + tree + "/folders/" + other.Node.String(), 404},
		{"/trees/" + tree + "/folders/" + alice.root.String(), 404},
		{"/trees/" + tree + "/folders/" + (coffer.NodeID{}).String(), 404},
		{"/trees/" + tree + "/folders/" + in.Node.String(), 200}, // inside: an empty listing (a file has no children)
		{"/blobs/" + b1.Blob.String(), 200},
		{"/blobs/" + b2.Blob.String(), 404},
	} {
		if got := get(linkPath(fl, c.path), resp.Token); got != c.want {
			t.Errorf("GET %s = %d, want %d", c.path, got, c.want)
		}
	}
	// The token is bound to its link: another link's path refuses it; no token is 401.
	req2, fl2, keys2 := alice.linkOf(other.Node, format.KindFolder, nil)
	if st, _ := e.call("POST", "/v1/links", alice.token, req2, nil); st != 200 {
		t.Fatal("create second link")
	}
	if got := get(linkPath(fl2, "/trees/"+tree+"/folders/"+other.Node.String()), resp.Token); got != 401 {
		t.Errorf("token of link 1 on link 2: %d", got)
	}
	if got := get(linkPath(fl, "/trees/"+tree+"/folders/"+docs.Node.String()), ""); got != 401 {
		t.Errorf("no token: %d", got)
	}
	// A replayed proof (same challenge) is refused.
	var ch api.LinkChallengeResponse
	e.call("POST", linkPath(fl2, "/challenge"), "", nil, &ch)
	sig := ed25519.Sign(keys2.Auth, format.LinkAuthMessage(fl2.ID, [32]byte(ch.Challenge)))
	open := api.LinkOpenRequest{Challenge: ch.Challenge, Signature: sig}
	if st, _ := e.call("POST", linkPath(fl2, "/open"), "", open, nil); st != 200 {
		t.Fatal("first open")
	}
	st, ae = e.call("POST", linkPath(fl2, "/open"), "", open, nil)
	wantErr(t, st, ae, http.StatusUnauthorized, api.CodeLoginFailed)

	// Max downloads 3: two more opens, then 410; the open token keeps working until revocation.
	for i := 0; i < 2; i++ {
		if st, ae, _ := e.open(fl, keys); st != 200 {
			t.Fatalf("open %d: %d %+v", i+2, st, ae)
		}
	}
	st, ae, _ = e.open(fl, keys)
	wantErr(t, st, ae, http.StatusGone, api.CodeGone)
	if got := get(linkPath(fl, "/blobs/"+b1.Blob.String()), resp.Token); got != 200 {
		t.Errorf("token after the last download: %d", got)
	}
	if st, _ := e.call("DELETE", "/v1/links/"+hex.EncodeToString(fl.ID[:]), alice.token, nil, nil); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	if got := get(linkPath(fl, "/blobs/"+b1.Blob.String()), resp.Token); got != 410 {
		t.Errorf("token after revocation: %d", got)
	}
	// The token expires.
	_, _, resp2 := e.open(fl2, keys2)
	e.clock.Add(linkTokenTTL + time.Second)
	if got := get(linkPath(fl2, "/trees/"+tree+"/folders/"+other.Node.String()), resp2.Token); got != 401 {
		t.Errorf("expired token: %d", got)
	}
	// Unknown link: 404 everywhere; malformed ID: 400.
	st, ae = e.call("POST", "/v1/links/"+strings.Repeat("ab", 16)+"/challenge", "", nil, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
	st, ae = e.call("POST", "/v1/links/XYZ/challenge", "", nil, nil)
	wantErr(t, st, ae, http.StatusBadRequest, api.CodeBadRequest)
}

func TestLinkPasswordThrottle(t *testing.T) {
	e := newEnv(t)
	alice := e.signup("alice")
	f := alice.file(alice.root, "a.txt")
	alice.commit(f)
	req, fl, keys := alice.linkOf(f.Node, format.KindFile, []byte("pw"))
	if st, ae := e.call("POST", "/v1/links", alice.token, req, nil); st != 200 {
		t.Fatalf("create: %d %+v", st, ae)
	}
	var ch api.LinkChallengeResponse
	e.call("POST", linkPath(fl, "/challenge"), "", nil, &ch)
	if ch.Flags&format.LinkFlagPassword == 0 || ch.KDF == nil || fromAPIKDF(*ch.KDF) != fl.KDF {
		t.Fatalf("challenge of a password link: %+v", ch)
	}
	_, badSecret := format.NewLinkID(), format.NewLinkSecret()
	wrong := format.DeriveLinkKeys(badSecret, []byte("guess"), fl.KDF)
	for i := 0; i < lockoutFrom; i++ {
		st, ae, _ := e.open(fl, wrong)
		wantErr(t, st, ae, http.StatusUnauthorized, api.CodeLoginFailed)
	}
	st, ae, _ := e.open(fl, keys)
	wantErr(t, st, ae, http.StatusTooManyRequests, api.CodeRateLimited)
	e.clock.Add(2 * time.Second)
	if st, ae, _ := e.open(fl, keys); st != 200 {
		t.Fatalf("open after back-off: %d %+v", st, ae)
	}
	// Nothing about the proof in the log.
	if strings.Contains(e.logs.String(), hex.EncodeToString(fl.ID[:])) {
		t.Error("link ID in the server log")
	}
}
