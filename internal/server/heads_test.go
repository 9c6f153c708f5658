package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

func TestHeadsEndpoint(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	heads := [][]byte{u.head.Marshal()}
	for i := 0; i < 5; i++ {
		u.commit(u.folder(u.root, fmt.Sprintf("f%d", i)))
		heads = append(heads, u.head.Marshal())
	}
	get := func(from, to string) (int, []byte) {
		t.Helper()
		resp := e.request("GET", treePath(u, "/heads?from="+from+"&to="+to), u.token, nil)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != api.HeadsContentType {
			t.Errorf("content type %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, b
	}
	for _, c := range []struct {
		from, to string
		want     [][]byte
	}{{"1", "6", heads}, {"2", "4", heads[1:4]}, {"6", "6", heads[5:]}, {"5", "100", heads[4:]}, {"7", "9", nil}} {
		st, b := get(c.from, c.to)
		if st != 200 || !bytes.Equal(b, bytes.Join(c.want, nil)) {
			t.Errorf("heads %s..%s: %d, %d bytes, want %d heads", c.from, c.to, st, len(b), len(c.want))
		}
	}
	for _, bad := range [][2]string{{"0", "3"}, {"3", "2"}, {"x", "3"}, {"1", ""}, {"-1", "2"}} {
		if st, _ := get(bad[0], bad[1]); st != http.StatusBadRequest {
			t.Errorf("heads %q..%q: status %d, want 400", bad[0], bad[1], st)
		}
	}
	// Another account's tree answers like a missing one.
	bob := e.signup("bob")
	st, ae := e.call("GET", treePath(u, "/heads?from=1&to=2"), bob.token, nil, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
	st, ae = e.call("GET", "/v1/trees/"+coffer.NewTreeID().String()+"/heads?from=1&to=2", u.token, nil, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
}

func TestSeenEndpoint(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	v1 := u.head.Marshal()
	u.commit(u.folder(u.root, "a"))
	v2 := u.head.Marshal()
	laptop, st, ae := u.login("laptop")
	if st != 200 {
		t.Fatalf("login: %d %+v", st, ae)
	}
	publish := func(token string, head []byte) (int, api.Error, api.SeenResponse) {
		t.Helper()
		var resp api.SeenResponse
		st, ae := e.call("PUT", treePath(u, "/seen"), token, api.SeenRequest{Head: head}, &resp)
		return st, ae, resp
	}
	st, ae, resp := publish(u.token, v2)
	if st != 200 || !bytes.Equal(resp.Current.Head, v2) || resp.Current.Version != 2 || len(resp.Heads) != 1 ||
		!resp.Heads[0].Own || !bytes.Equal(resp.Heads[0].Head, v2) || resp.Heads[0].Device != "test" {
		t.Fatalf("first publication: %d %+v %+v", st, ae, resp)
	}
	e.clock.Add(time.Second)
	st, ae, resp = publish(laptop.Token, v1)
	if st != 200 || len(resp.Heads) != 2 || resp.Heads[0].Device != "laptop" || !resp.Heads[0].Own ||
		!bytes.Equal(resp.Heads[0].Head, v1) || resp.Heads[1].Own || resp.Heads[1].Session != u.session {
		t.Fatalf("second publication: %d %+v %+v", st, ae, resp)
	}
	// Refused: garbage, another tree's head, a head newer than the tree's, a head not signed by
	// the owner, another account's tree.
	bob := e.signup("bob")
	future, _ := u.build(u.folder(u.root, "b"))
	forged, _ := format.ParseHead(v2)
	forged.Sign(bob.signer)
	for name, head := range map[string][]byte{"garbage": []byte("x"), "other tree": bob.head.Marshal(),
		"future": future.Head, "foreign signer": forged.Marshal()} {
		t.Run(name, func(t *testing.T) {
			st, ae, _ := publish(u.token, head)
			wantErr(t, st, ae, http.StatusBadRequest, api.CodeBadRequest)
		})
	}
	st, ae = e.call("PUT", treePath(u, "/seen"), bob.token, api.SeenRequest{Head: v2}, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)
	// A revoked session's publication is no longer served.
	if st, ae := e.call("DELETE", "/v1/sessions/"+laptop.Session, u.token, nil, nil); st != 204 && st != 200 {
		t.Fatalf("revoke: %d %+v", st, ae)
	}
	st, ae, resp = publish(u.token, v2)
	if st != 200 || len(resp.Heads) != 1 || resp.Heads[0].Session != u.session {
		t.Fatalf("after revoking the laptop: %d %+v %+v", st, ae, resp)
	}
}
