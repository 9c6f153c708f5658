package hostile

// Scenarios 18, 19 and 26-29 of doc/SECURITY.md: shared folders (rosters, invites, epochs).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// shareFixture: alice shares /proj with bob (read-only, or read-write with bobWrite) and carol
// (read-write); with accept, both accepted (mounted at /proj).
type shareFixture struct {
	env               *testenv.Env
	alice, bob, carol *client.Client
	tree              coffer.TreeID
	id                string
}

func newShareFixture(t testing.TB, bobWrite, accept bool) *shareFixture {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	f := &shareFixture{env: env}
	f.alice, f.bob, f.carol = env.Client(t, "alice"), env.Client(t, "bob"), env.Client(t, "carol")
	src := filepath.Join(t.TempDir(), "proj")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("shared content"))
	writeFile(t, filepath.Join(src, "sub", "b.bin"), randBytes(5000))
	if _, err := f.alice.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*client.Client{f.bob, f.carol} {
		who := m.Whoami()
		if _, err := f.alice.VerifyContact(ctx, who.Username, who.Fingerprint); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.alice.Share(ctx, "/proj", "bob", client.ShareOptions{Write: bobWrite}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Share(ctx, "/proj", "carol", client.ShareOptions{Write: true}); err != nil {
		t.Fatal(err)
	}
	e, err := f.alice.Stat(ctx, "/proj")
	if err != nil || e.Shared == (coffer.TreeID{}) {
		t.Fatalf("stat /proj: %+v %v", e, err)
	}
	f.tree, f.id = e.Shared, e.Shared.String()
	if accept {
		for _, m := range []*client.Client{f.bob, f.carol} {
			if _, err := m.AcceptShare(ctx, f.id, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

// fresh logs user in again with an empty state directory (no cached views or rosters).
func (f *shareFixture) fresh(t testing.TB, user string) *client.Client {
	t.Helper()
	c, err := client.Login(context.Background(), f.env.Config(t.TempDir()), user, testenv.Password(user), "fresh")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// invitesHook rewrites the JSON answers of GET /v1/invites.
func invitesHook(edit func(*api.InvitesResponse)) testenv.Hook {
	return func(req *http.Request, resp *http.Response) error {
		if req.URL.Path != "/v1/invites" || resp.StatusCode != 200 {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		var ir api.InvitesResponse
		if err := json.Unmarshal(b, &ir); err != nil {
			return err
		}
		edit(&ir)
		nb, _ := json.Marshal(&ir)
		testenv.ReplaceBody(resp, nb)
		return nil
	}
}

// rawGet fetches a path from the server directly with a session token.
func rawGet(t testing.TB, env *testenv.Env, token, p string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", env.URL+p, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
	}
	return b
}

// shareKey is the key s's bundle holds for tree.
func shareKey(t testing.TB, s *secrets, tree coffer.TreeID) format.TreeKey {
	t.Helper()
	for _, sk := range s.bundle.Shares {
		if sk.Tree == tree {
			return sk.Key
		}
	}
	t.Fatalf("%v: no share key for %v", s.account, tree)
	return format.TreeKey{}
}

// rootOf finds the shared tree's root folder (ID and node key) with a member's secrets.
func rootOf(t testing.TB, env *testenv.Env, s *secrets, tree coffer.TreeID) (coffer.NodeID, format.NodeKey) {
	t.Helper()
	fs, ok := splitFrames(rawGet(t, env, s.token, "/v1/trees/"+tree.String()+"/folders/"+coffer.NodeID{}.String()))
	if !ok {
		t.Fatal("bad listing")
	}
	for _, fr := range fs {
		if fr.typ == api.FrameRecord {
			if o := openRecord(t, fr.b, shareKey(t, s, tree).WrapKey()); o.body.Role == format.RoleRoot {
				return o.rec.Node, o.key
			}
		}
	}
	t.Fatal("no root folder")
	return coffer.NodeID{}, format.NodeKey{}
}

// injectAs commits a file signed by s's identity key straight into the server's store, in the
// root folder of the shared tree (root key read with reader's secrets).
func injectAs(t testing.TB, env *testenv.Env, tree coffer.TreeID, owner coffer.AccountID, reader, signer *secrets, name string) {
	t.Helper()
	root, key := rootOf(t, env, reader, tree)
	listing := rawGet(t, env, reader.token, "/v1/trees/"+tree.String()+"/folders/"+root.String())
	if err := InjectFile(context.Background(), env.Meta, owner, listing, root, key.WrapKey(), signer.bundle.SigningKey(), name); err != nil {
		t.Fatal(err)
	}
}

func TestScenario18_SharedKeyDivergence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, false, false)
	// The server hands bob carol's invite (a different wrapped tree key, addressed to carol).
	var carols []byte
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
		if len(ir.Invites) == 1 && carols == nil {
			carols = ir.Invites[0].Invite
		}
	}))
	if _, err := f.carol.Shares(ctx); err != nil || carols == nil {
		t.Fatalf("carol's invites: %v", err)
	}
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
		for i := range ir.Invites {
			ir.Invites[i].Invite = carols
		}
	}))
	if _, err := f.bob.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("bob accepts carol's invite: %v", err)
	}
	f.env.SetHook(nil)
	if _, err := f.bob.Stat(ctx, "/proj"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("a refused invite left a mount: %v", err)
	}
	// Honest accepts; then bob's listing carries another wrapped key for the root folder
	// (every member must see the keys the owner committed to, byte for byte).
	for _, m := range []*client.Client{f.bob, f.carol} {
		if _, err := m.AcceptShare(ctx, f.id, ""); err != nil {
			t.Fatal(err)
		}
	}
	inTree := listingHook(coffer.NodeID{}.String(), func(fs []frame, _ coffer.NodeID) []frame {
		for i, fr := range fs {
			if fr.typ != api.FrameRecord {
				continue
			}
			r, err := format.ParseRecord(fr.b)
			if err != nil || r.Kind != format.KindFolder {
				continue
			}
			r.WrappedKey = randBytes(len(r.WrappedKey))
			fs[i].b = r.Marshal()
		}
		return fs
	})
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if !strings.Contains(req.URL.Path, f.tree.String()) {
			return nil // only the shared tree's listings
		}
		return inTree(req, resp)
	})
	bob2 := f.fresh(t, "bob")
	expectListRefused(t, bob2, "/proj", coffer.ErrAuth)
	f.env.SetHook(nil)
	if _, err := bob2.List(ctx, "/proj"); err != nil {
		t.Fatalf("honest listing after the attack: %v", err)
	}
}

func TestScenario19_MissingFolderKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, true, false)
	// No invite served: accept fails clearly, nothing is minted or mounted.
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) { ir.Invites = nil }))
	if _, err := f.bob.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("accept without an invite: %v", err)
	}
	f.env.SetHook(nil)
	if es, err := f.bob.List(ctx, "/"); err != nil || len(es) != 0 {
		t.Fatalf("bob's drive after a refused accept: %v %v", es, err)
	}
	for _, m := range []*client.Client{f.bob, f.carol} {
		if _, err := m.AcceptShare(ctx, f.id, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The roster is missing: an error, never an empty folder.
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") {
			testenv.ReplaceBody(resp, []byte(`{"code":"not_found","message":"no such tree"}`))
			resp.StatusCode = 404
		}
		return nil
	})
	if es, err := f.fresh(t, "bob").List(ctx, "/proj"); !errors.Is(err, coffer.ErrNotFound) || es != nil {
		t.Fatalf("listing without a roster: %v %v", es, err)
	}
	f.env.SetHook(nil)
	// After a rotation, the server withholds bob's new key: bob neither reads nor writes (and
	// mints no key of his own), with a clear error.
	if _, err := f.alice.Revoke(ctx, "/proj", "carol"); err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) { ir.Invites = nil }))
	if _, err := f.bob.List(ctx, "/proj"); !errors.Is(err, client.ErrKeyRotated) {
		t.Fatalf("list with the new key withheld: %v", err)
	}
	if _, err := f.bob.Mkdir(ctx, "/proj/bobs", false); !errors.Is(err, client.ErrKeyRotated) {
		t.Fatalf("mkdir with the new key withheld: %v", err)
	}
	f.env.SetHook(nil)
	if _, err := f.bob.Mkdir(ctx, "/proj/bobs", false); err != nil {
		t.Fatalf("mkdir once the key arrives: %v", err)
	}
	if _, err := f.alice.Stat(ctx, "/proj/bobs"); err != nil {
		t.Fatalf("alice sees bob's folder: %v", err)
	}
}

func TestScenario26_UnauthorisedWriter(t *testing.T) {
	t.Parallel()
	t.Run("reader", func(t *testing.T) {
		t.Parallel()
		f := newShareFixture(t, false, true)
		alice, bob := captureSecrets(t, f.env, "alice"), captureSecrets(t, f.env, "bob")
		// The server refuses the reader's well-formed commit itself (403).
		root, key := rootOf(t, f.env, bob, f.tree)
		listing := rawGet(t, f.env, bob.token, "/v1/trees/"+f.tree.String()+"/folders/"+root.String())
		req, _, err := ForgeFile(listing, root, key.WrapKey(), bob.bundle.SigningKey(), "posted-by-a-reader.txt")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(req)
		hr, _ := http.NewRequest("POST", f.env.URL+"/v1/trees/"+f.tree.String()+"/commit", bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+bob.token)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a reader's commit: HTTP %d, want 403", resp.StatusCode)
		}
		// Written straight into the store instead: every client refuses it.
		injectAs(t, f.env, f.tree, alice.account, bob, bob, "from-a-reader.txt")
		for _, c := range []*client.Client{f.alice, f.bob, f.carol} {
			err := expectListRefused(t, c, "/proj", coffer.ErrAuth)
			if !strings.Contains(err.Error(), "may not write") {
				t.Errorf("refusal does not say why: %v", err)
			}
		}
	})
	t.Run("removed member", func(t *testing.T) {
		t.Parallel()
		f := newShareFixture(t, false, true)
		carol := captureSecrets(t, f.env, "carol") // her keys while she was a writer
		if _, err := f.alice.Revoke(context.Background(), "/proj", "carol"); err != nil {
			t.Fatal(err)
		}
		alice := captureSecrets(t, f.env, "alice")
		injectAs(t, f.env, f.tree, alice.account, alice, carol, "from-a-removed-writer.txt")
		expectListRefused(t, f.alice, "/proj", coffer.ErrAuth)
		expectListRefused(t, f.bob, "/proj", coffer.ErrAuth)
	})
	t.Run("stranger", func(t *testing.T) {
		t.Parallel()
		f := newShareFixture(t, false, true)
		f.env.Client(t, "mallory")
		alice, mallory := captureSecrets(t, f.env, "alice"), captureSecrets(t, f.env, "mallory")
		injectAs(t, f.env, f.tree, alice.account, alice, mallory, "from-a-stranger.txt")
		expectListRefused(t, f.bob, "/proj", coffer.ErrAuth)
	})
}

func TestScenario27_SubstitutedShareeKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, false, false)
	dave := f.env.Client(t, "dave")
	daveAcct := dave.Whoami().Account
	fake := format.NewBundle(daveAcct).PublicKeys("dave").Marshal()
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path == "/v1/users/dave/keys" && resp.StatusCode == 200 {
			b, _ := json.Marshal(api.UserKeysResponse{Account: daveAcct, PublicKeys: fake})
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	// First sight of a substituted key: pinned unverified, so sharing is refused; comparing the
	// real fingerprint exposes it.
	if _, err := f.alice.Share(ctx, "/proj", "dave", client.ShareOptions{}); !errors.Is(err, client.ErrUnverifiedContact) {
		t.Fatalf("share to a substituted, unverified key: %v", err)
	}
	if _, err := f.alice.VerifyContact(ctx, "dave", dave.Whoami().Fingerprint); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("verify against the real fingerprint: %v", err)
	}
	// Shared anyway (--unverified): the real dave refuses the invite (not sealed to his key).
	if _, err := f.alice.Share(ctx, "/proj", "dave", client.ShareOptions{Unverified: true}); err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(nil)
	if _, err := dave.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("dave accepts an invite sealed to a substituted key: %v", err)
	}
	// A pinned, verified key substituted later: sharing stops (ErrAuth, KeyChangedError).
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path == "/v1/users/bob/keys" && resp.StatusCode == 200 {
			b, _ := json.Marshal(api.UserKeysResponse{Account: f.bob.Whoami().Account,
				PublicKeys: format.NewBundle(f.bob.Whoami().Account).PublicKeys("bob").Marshal()})
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	var kc *client.KeyChangedError
	if _, err := f.alice.Share(ctx, "/proj", "bob", client.ShareOptions{Write: true}); !errors.As(err, &kc) || !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("share after a key change: %v", err)
	}
}

func TestScenario28_ForgedInvite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, false, false)
	bob := captureSecrets(t, f.env, "bob")
	bobPub := bob.bundle.PublicKeys("bob")
	aliceAcct := f.alice.Whoami().Account
	// A server-made invite: its own tree key, signed by its own key in alice's name.
	attacker := format.NewBundle(aliceAcct)
	forged, err := format.SealInvite(f.tree, 1, format.ShareWrite, format.NewTreeKey(), attacker, bobPub)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := forged.Marshal()
	clear(unsigned[len(unsigned)-64:])
	for name, inv := range map[string][]byte{"server-signed": forged.Marshal(), "unsigned": unsigned} {
		f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
			for i := range ir.Invites {
				ir.Invites[i].Invite = inv
			}
		}))
		if _, err := f.bob.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrAuth) {
			t.Fatalf("%s invite accepted: %v", name, err)
		}
	}
	// A flipped byte of the real invite; a roster signed by another key.
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
		for i := range ir.Invites {
			ir.Invites[i].Invite[200] ^= 1
		}
	}))
	if _, err := f.bob.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("flipped invite accepted: %v", err)
	}
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
		for i := range ir.Invites {
			r, err := format.ParseRoster(ir.Invites[i].Roster)
			if err != nil {
				continue
			}
			r.Generation++
			if r.Sign(attacker.SigningKey()) == nil {
				ir.Invites[i].Roster = r.Marshal()
			}
		}
	}))
	if _, err := f.bob.AcceptShare(ctx, f.id, ""); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("invite with a forged roster accepted: %v", err)
	}
	f.env.SetHook(nil)
	if es, err := f.bob.List(ctx, "/"); err != nil || len(es) != 0 {
		t.Fatalf("bob's drive after refused invites: %v %v", es, err)
	}
	if _, err := f.bob.AcceptShare(ctx, f.id, ""); err != nil {
		t.Fatalf("the real invite: %v", err)
	}
	// A roster of the same tree naming another owner (validly signed by that account) is refused
	// by the device that pinned alice as the owner.
	f.env.Client(t, "mallory")
	mallory := captureSecrets(t, f.env, "mallory")
	mr := &format.Roster{Tree: f.tree, Owner: mallory.account, Generation: 99, Epoch: 1,
		Members: []format.Member{{Account: bob.account, Role: format.ShareRead, Signing: [32]byte(bobPub.Signing), KEMFingerprint: bobPub.KEMFingerprint()}}}
	if err := mr.Sign(mallory.bundle.SigningKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.alice.Mkdir(ctx, "/proj/moved", false); err != nil { // the head moves: bob re-reads the roster
		t.Fatal(err)
	}
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") && req.Method == "GET" && resp.StatusCode == 200 {
			b, _ := testenv.ReadBody(resp)
			var rr api.RosterResponse
			if err := json.Unmarshal(b, &rr); err != nil {
				return err
			}
			rr.Roster, rr.Owner, rr.OwnerUsername = mr.Marshal(), mallory.account, "mallory"
			nb, _ := json.Marshal(&rr)
			testenv.ReplaceBody(resp, nb)
		}
		return nil
	})
	expectListRefused(t, f.bob, "/proj", coffer.ErrAuth)
	f.env.SetHook(nil)
}

func TestScenario29_StaleEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, true, true)
	var oldRoster []byte
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") && req.Method == "GET" && resp.StatusCode == 200 && oldRoster == nil {
			oldRoster, _ = testenv.ReadBody(resp)
		}
		return nil
	})
	if _, err := f.fresh(t, "carol").List(ctx, "/proj"); err != nil || oldRoster == nil {
		t.Fatalf("carol lists: %v", err)
	}
	f.env.SetHook(nil)
	if _, err := f.alice.Revoke(ctx, "/proj", "carol"); err != nil {
		t.Fatal(err)
	}
	// The new key withheld: bob (a writer) refuses to write under his old epoch.
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) { ir.Invites = nil }))
	local := filepath.Join(t.TempDir(), "late.txt")
	writeFile(t, local, []byte("written with the old key"))
	if _, err := f.bob.Upload(ctx, []string{local}, "/proj/", client.TransferOptions{}); !errors.Is(err, client.ErrKeyRotated) {
		t.Fatalf("upload under a stale epoch: %v", err)
	}
	// The old roster replayed with the rotated tree: refused (its key cannot open the new state).
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") && req.Method == "GET" {
			testenv.ReplaceBody(resp, oldRoster)
		}
		return nil
	})
	if _, err := f.bob.List(ctx, "/proj"); !errors.Is(err, coffer.ErrAuth) && !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("old roster with the rotated tree: %v", err)
	}
	f.env.SetHook(nil)
	if _, err := f.bob.Upload(ctx, []string{local}, "/proj/", client.TransferOptions{}); err != nil {
		t.Fatalf("upload once re-keyed: %v", err)
	}
	// Once bob saw the new roster, the old one is a rollback.
	if err := f.alice.Remove(ctx, "/proj/a.txt"); err != nil { // move the head: bob re-reads the roster
		t.Fatal(err)
	}
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") && req.Method == "GET" {
			testenv.ReplaceBody(resp, oldRoster)
		}
		return nil
	})
	if _, err := f.bob.List(ctx, "/proj"); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("old roster after the new one: %v", err)
	}
	f.env.SetHook(nil)
	var b bytes.Buffer
	if err := f.carol.Cat(ctx, "/proj/late.txt", &b); err == nil {
		t.Fatal("carol reads after her removal")
	}
}

// TestSharedFolderRollback: a shared folder's head is hash-chained and remembered per tree: an
// older listing of it, served after a newer one, is a rollback for the member.
func TestSharedFolderRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, false, true)
	bob := f.fresh(t, "bob")
	var old []byte
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if old == nil && isListing(req, resp) && strings.Contains(req.URL.Path, f.tree.String()) && folderOf(req) == (coffer.NodeID{}).String() {
			old, _ = testenv.ReadBody(resp)
		}
		return nil
	})
	if _, err := bob.List(ctx, "/proj"); err != nil || old == nil {
		t.Fatalf("bob lists: %v", err)
	}
	f.env.SetHook(nil)
	if _, err := f.alice.Mkdir(ctx, "/proj/newer", false); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Stat(ctx, "/proj/newer"); err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if isListing(req, resp) && strings.Contains(req.URL.Path, f.tree.String()) && folderOf(req) == (coffer.NodeID{}).String() {
			testenv.ReplaceBody(resp, old)
		}
		return nil
	})
	expectListRefused(t, bob, "/proj", coffer.ErrRollback)
}
