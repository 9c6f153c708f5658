package server

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/metastore/postgres"
)

// sharedTree is a test view of a shared tree: a *user whose tree is the shared one (so build,
// post, commit and list work on it) and whose signer and token are switched with as().
type sharedTree struct {
	*user
	owner  *user
	tk     format.TreeKey
	roster *format.Roster
}

// as makes the view sign and send as u.
func (st *sharedTree) as(u *user) *sharedTree {
	st.signer, st.token = u.signer, u.token
	return st
}

func memberOf(u *user, role uint8) format.Member {
	p := u.bundle.PublicKeys(u.name)
	return format.Member{Account: u.acct, Role: role, Signing: [32]byte(p.Signing), KEMFingerprint: p.KEMFingerprint()}
}

// signRoster sorts and signs r with signer.
func signRoster(t testing.TB, r *format.Roster, signer ed25519.PrivateKey) []byte {
	t.Helper()
	r.SortMembers()
	if err := r.Sign(signer); err != nil {
		t.Fatal(err)
	}
	return r.Marshal()
}

func invite(t testing.TB, st *sharedTree, to *user, role uint8, epoch uint32) []byte {
	t.Helper()
	inv, err := format.SealInvite(st.tree(), epoch, role, st.tk, st.owner.bundle, to.bundle.PublicKeys(to.name))
	if err != nil {
		t.Fatal(err)
	}
	return inv.Marshal()
}

// newShared prepares a shared tree of owner (root and trash) with members, without creating it.
func (e *env) newShared(owner *user, members map[*user]uint8) (*sharedTree, api.ShareCreateRequest) {
	e.t.Helper()
	t := e.t
	tk := format.NewTreeKey()
	view := &user{e: e, name: owner.name, acct: owner.acct, bundle: &format.Bundle{Tree: coffer.NewTreeID(), TreeKey: tk},
		signer: owner.signer, token: owner.token, live: map[coffer.NodeID]*format.Record{},
		keys: map[coffer.NodeID]format.NodeKey{}, blobsOf: map[*format.Record][]coffer.BlobID{}}
	st := &sharedTree{user: view, owner: owner, tk: tk}
	root := view.folderRole(coffer.NodeID{}, "Shared", format.RoleRoot)
	trash := view.folderRole(coffer.NodeID{}, "trash", format.RoleTrash)
	view.root, view.trash = root.Node, trash.Node
	commit, _ := view.build(root, trash)
	st.roster = &format.Roster{Tree: view.tree(), Owner: owner.acct, Generation: 1, Epoch: 1}
	var invites [][]byte
	for m, role := range members {
		st.roster.Members = append(st.roster.Members, memberOf(m, role))
		invites = append(invites, invite(t, st, m, role, 1))
	}
	raw := signRoster(t, st.roster, owner.signer)
	return st, api.ShareCreateRequest{Tree: view.tree(), Roster: raw, Commit: commit, Invites: invites}
}

// share creates a shared tree and fails the test on an error.
func (e *env) share(owner *user, members map[*user]uint8) *sharedTree {
	e.t.Helper()
	st, req := e.newShared(owner, members)
	var resp api.CommitResponse
	if code, ae := e.call("POST", "/v1/trees", owner.token, req, &resp); code != 200 {
		e.t.Fatalf("share: %d %s: %s", code, ae.Code, ae.Message)
	}
	st.accept(req.Commit)
	return st
}

func (e *env) acceptInvite(u *user, st *sharedTree, epoch uint32) {
	e.t.Helper()
	if code, ae := e.call("POST", "/v1/invites/"+st.tree().String()+"/accept", u.token, api.InviteAcceptRequest{Epoch: epoch}, nil); code != 204 {
		e.t.Fatalf("accept: %d %s: %s", code, ae.Code, ae.Message)
	}
}

func (e *env) headOf(u *user, tree coffer.TreeID) (int, api.Error) {
	e.t.Helper()
	return e.call("GET", "/v1/trees/"+tree.String()+"/head", u.token, nil, nil)
}

func (e *env) feed(u *user) []api.Change {
	e.t.Helper()
	var resp api.ChangesResponse
	if code, ae := e.call("GET", "/v1/changes?limit=1000", u.token, nil, &resp); code != 200 {
		e.t.Fatalf("changes: %d %s", code, ae.Message)
	}
	return resp.Changes
}

func lastOf(cs []api.Change) api.Change { return cs[len(cs)-1] }

// newPGEnv is newEnv on a fresh PostgreSQL database (COFFER_TEST_POSTGRES; skipped without it,
// failing in CI). Its meta field is nil: use e.srv.cfg.Meta.
func newPGEnv(t *testing.T, mods ...func(*Config)) *env {
	t.Helper()
	dsn := freshPG(t)
	meta, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	return newEnv(t, append([]func(*Config){func(c *Config) { c.Meta = meta }}, mods...)...)
}

func TestShareMembersAccess(t *testing.T) {
	testShareMembersAccess(t, newEnv(t, func(c *Config) { c.DefaultQuota = 1000 }))
}

func TestShareMembersAccessPostgres(t *testing.T) {
	testShareMembersAccess(t, newPGEnv(t, func(c *Config) { c.DefaultQuota = 1000 }))
}

func testShareMembersAccess(t *testing.T, e *env) {
	alice, bob, carol, dave := e.signup("alice"), e.signup("bob"), e.signup("carol"), e.signup("dave")
	st := e.share(alice, map[*user]uint8{bob: format.ShareRead, carol: format.ShareWrite})
	tree := st.tree()

	// Invitees get a sharing event and a verifiable invite, but no access before accepting.
	if c := lastOf(e.feed(bob)); c.Tree != tree || c.Version != 0 || len(c.Head) != 0 || len(c.Ops) != 0 {
		t.Fatalf("bob's sharing event = %+v", c)
	}
	code, ae := e.headOf(bob, tree)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	var invs api.InvitesResponse
	if code, ae := e.call("GET", "/v1/invites", bob.token, nil, &invs); code != 200 || len(invs.Invites) != 1 {
		t.Fatalf("invites: %d %s, %d invites", code, ae.Message, len(invs.Invites))
	}
	in := invs.Invites[0]
	if in.Tree != tree || in.Status != api.StatusInvited || in.Epoch != 1 || in.Role != format.ShareRead || in.Owner != alice.acct || in.OwnerUsername != "alice" {
		t.Fatalf("invite info = %+v", in)
	}
	pinv, err := format.ParseInvite(in.Invite)
	if err != nil {
		t.Fatal(err)
	}
	ownerPub, err := format.ParsePublicKeys(in.OwnerPublicKeys)
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := pinv.Open(bob.bundle, ownerPub); err != nil || tk != st.tk {
		t.Fatalf("open invite: %v", err)
	}
	if ro, err := format.ParseRoster(in.Roster); err != nil || ro.CheckOwner(alice.acct, alice.signer.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("invite roster: %v", err)
	}

	// An invitee may read the roster before accepting (to check the invite against it).
	var rr api.RosterResponse
	if code, ae := e.call("GET", "/v1/trees/"+tree.String()+"/roster", bob.token, nil, &rr); code != 200 || len(rr.Members) != 2 || rr.OwnerUsername != "alice" {
		t.Fatalf("invitee roster: %d %s, %d members", code, ae.Message, len(rr.Members))
	}
	// Accepting needs the current epoch.
	code, ae = e.call("POST", "/v1/invites/"+tree.String()+"/accept", bob.token, api.InviteAcceptRequest{Epoch: 2}, nil)
	wantErr(t, code, ae, 409, api.CodeConflict)
	e.acceptInvite(bob, st, 1)
	e.acceptInvite(carol, st, 1)
	if code, ae := e.headOf(bob, tree); code != 200 {
		t.Fatalf("bob head after accept: %d %s", code, ae.Message)
	}
	l := st.as(bob).list(st.root)
	if err := l.verify(st.root); err != nil {
		t.Fatalf("bob's listing does not verify: %v", err)
	}

	// A reader cannot commit or upload; a writer can, with its own key only.
	req, _ := st.as(bob).build(st.folder(st.root, "by bob"))
	code, ae, _ = st.post(req)
	wantErr(t, code, ae, 403, api.CodeForbidden)
	code, ae = e.putBlob("/v1/trees/"+tree.String(), bob.token, []byte("bob data"), nil)
	wantErr(t, code, ae, 403, api.CodeForbidden)
	req, _ = st.as(alice).build(st.folder(st.root, "signed by alice, sent by carol"))
	st.token = carol.token
	code, ae, _ = st.post(req)
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)

	// Carol's upload counts against alice's quota.
	var put api.BlobPutResponse
	if code, ae := e.putBlob("/v1/trees/"+tree.String(), carol.token, bytes.Repeat([]byte{1}, 800), &put); code != 200 {
		t.Fatalf("carol upload: %d %s", code, ae.Message)
	}
	var usage api.UsageResponse
	e.call("GET", "/v1/usage", alice.token, nil, &usage)
	if usage.Used != 800 {
		t.Fatalf("alice used %d, want 800 (carol's upload into alice's shared tree)", usage.Used)
	}
	e.call("GET", "/v1/usage", carol.token, nil, &usage)
	if usage.Used != 0 {
		t.Fatalf("carol used %d, want 0", usage.Used)
	}
	code, ae = e.putBlob("/v1/trees/"+tree.String(), carol.token, bytes.Repeat([]byte{2}, 300), nil)
	wantErr(t, code, ae, 507, api.CodeQuota)

	var check api.BlobsResponse
	if code, _ := e.call("POST", "/v1/trees/"+tree.String()+"/blobs/check", carol.token, api.BlobsRequest{Blobs: []coffer.BlobID{put.Blob}}, &check); code != 200 || len(check.Present) != 1 {
		t.Fatalf("tree blob check: %d, %v", code, check.Present)
	}
	code, ae = e.call("POST", "/v1/trees/"+tree.String()+"/blobs/check", bob.token, api.BlobsRequest{Blobs: []coffer.BlobID{put.Blob}}, nil)
	wantErr(t, code, ae, 403, api.CodeForbidden)

	f := st.as(carol).file(st.root, "carol.txt", put.Blob)
	resp := st.commit(f)
	if resp.Seq != lastOf(e.feed(carol)).Seq {
		t.Fatalf("commit response seq %d is not carol's feed position", resp.Seq)
	}
	// The commit is in the feeds of alice, bob and carol, not dave's.
	for _, u := range []*user{alice, bob, carol} {
		if c := lastOf(e.feed(u)); c.Tree != tree || c.Version != st.head.Version || !bytes.Equal(c.Head, st.head.Marshal()) || len(c.Ops) != 1 {
			t.Fatalf("%s's feed: last = %+v", u.name, c)
		}
	}
	if c := lastOf(e.feed(dave)); c.Tree == tree {
		t.Fatal("dave got the shared tree's commit")
	}

	// Blobs of the tree are readable by members through the tree, nothing else is.
	body := e.request("GET", "/v1/trees/"+tree.String()+"/blobs/"+put.Blob.String(), bob.token, nil)
	got, _ := io.ReadAll(body.Body)
	body.Body.Close()
	if body.StatusCode != 200 || !bytes.Equal(got, bytes.Repeat([]byte{1}, 800)) {
		t.Fatalf("bob tree blob: %d, %d bytes", body.StatusCode, len(got))
	}
	code, ae = e.call("GET", "/v1/blobs/"+put.Blob.String(), bob.token, nil, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	own, _, _ := alice.upload([]byte("alice private"))
	code, ae = e.call("GET", "/v1/trees/"+tree.String()+"/blobs/"+own.Blob.String(), bob.token, nil, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	code, ae = e.call("GET", "/v1/trees/"+alice.tree().String()+"/blobs/"+own.Blob.String(), bob.token, nil, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)

	// A non-member sees nothing and can change nothing.
	for _, p := range []string{"/head", "/folders/" + st.root.String(), "/nodes/" + f.Node.String() + "/versions",
		"/blobs/" + put.Blob.String(), "/roster"} {
		code, ae := e.call("GET", "/v1/trees/"+tree.String()+p, dave.token, nil, nil)
		wantErr(t, code, ae, 404, api.CodeNotFound)
	}
	req, _ = st.as(dave).build(st.folder(st.root, "by dave"))
	code, ae, _ = st.post(req)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	code, ae = e.call("POST", "/v1/invites/"+tree.String()+"/accept", dave.token, api.InviteAcceptRequest{Epoch: 1}, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)

	// Members' versions endpoint works.
	var vr api.VersionsResponse
	if code, _ := e.call("GET", "/v1/trees/"+tree.String()+"/nodes/"+f.Node.String()+"/versions", bob.token, nil, &vr); code != 200 || len(vr.Records) != 1 {
		t.Fatalf("bob versions: %d, %d records", code, len(vr.Records))
	}

	// fsck accepts a shared tree written by several members.
	var out bytes.Buffer
	if n, err := FsckStores(t.Context(), e.srv.cfg.Meta, e.blobs, &out); n != 0 || err != nil {
		t.Fatalf("fsck: %d problems, %v:\n%s", n, err, out.String())
	}

	// Account keys by ID.
	var keys api.UserKeysResponse
	if code, _ := e.call("GET", "/v1/accounts/"+carol.acct.String()+"/keys", bob.token, nil, &keys); code != 200 || keys.Account != carol.acct {
		t.Fatalf("account keys: %d", code)
	}
	if p, err := format.ParsePublicKeys(keys.PublicKeys); err != nil || p.Username != "carol" {
		t.Fatalf("account keys record: %v", err)
	}
	code, ae = e.call("GET", "/v1/accounts/"+coffer.NewAccountID().String()+"/keys", bob.token, nil, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)
}

// revokeReq builds alice's revoke of carol: roster generation+1, epoch+1, carol removed at the
// current head, re-key invites for the other active members, and a key-rotation commit.
func revokeReq(t *testing.T, st *sharedTree, removed *user, others ...*user) (api.RosterUpdateRequest, *format.Roster) {
	t.Helper()
	next := *st.roster
	next.Members = append([]format.Member(nil), st.roster.Members...)
	next.Generation++
	next.Epoch++
	next.Member(removed.acct).State = format.MemberRemoved
	next.Member(removed.acct).Until = st.head.Version
	newTK := format.NewTreeKey()
	old := st.tk
	st.tk = newTK
	var invites [][]byte
	for _, o := range others {
		invites = append(invites, invite(t, st, o, next.Member(o.acct).Role, next.Epoch))
	}
	st.tk = old
	raw := signRoster(t, &next, st.owner.signer)
	// Rotation: the root folder gets a new version (a real client rotates every live node).
	st.as(st.owner)
	commit, _ := st.build(st.next(st.root, coffer.NodeID{}))
	return api.RosterUpdateRequest{Roster: raw, Invites: invites, Commit: &commit}, &next
}

func TestShareRevoke(t *testing.T) { testShareRevoke(t, newEnv(t)) }

func TestShareRevokePostgres(t *testing.T) { testShareRevoke(t, newPGEnv(t)) }

func testShareRevoke(t *testing.T, e *env) {
	alice, bob, carol := e.signup("alice"), e.signup("bob"), e.signup("carol")
	st := e.share(alice, map[*user]uint8{bob: format.ShareRead, carol: format.ShareWrite})
	e.acceptInvite(bob, st, 1)
	e.acceptInvite(carol, st, 1)
	st.as(carol).commit(st.folder(st.root, "carol's"))
	path := "/v1/trees/" + st.tree().String() + "/roster"
	post := func(req api.RosterUpdateRequest, token string) (int, api.Error, api.RosterUpdateResponse) {
		var resp api.RosterUpdateResponse
		code, ae := e.call("POST", path, token, req, &resp)
		return code, ae, resp
	}

	// Refusals: each leaves the roster at generation 1.
	req, _ := revokeReq(t, st, carol, bob)
	code, ae, _ := post(req, carol.token)
	wantErr(t, code, ae, 403, api.CodeForbidden)

	missing := req
	missing.Invites = nil
	code, ae, _ = post(missing, alice.token)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "missing the invite")

	mut := func(f func(r *format.Roster)) api.RosterUpdateRequest {
		r, _ := format.ParseRoster(req.Roster)
		f(r)
		out := req
		out.Roster = signRoster(t, r, alice.signer)
		return out
	}
	code, ae, _ = post(mut(func(r *format.Roster) { r.Generation = 3 }), alice.token)
	wantErr(t, code, ae, 409, api.CodeConflict)
	code, ae, _ = post(mut(func(r *format.Roster) { r.Member(carol.acct).Until = st.head.Version - 1 }), alice.token)
	wantErr(t, code, ae, 409, api.CodeConflict)
	code, ae, _ = post(mut(func(r *format.Roster) { r.Member(carol.acct).Until = st.head.Version + 1 }), alice.token)
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)
	code, ae, _ = post(mut(func(r *format.Roster) { r.Epoch = 1 }), alice.token)
	if code != 400 && code != 422 { // the invites name epoch 2, or the epoch rule
		t.Fatalf("revoke without rotation: %d %s", code, ae.Message)
	}
	code, ae, _ = post(mut(func(r *format.Roster) { r.Members = r.Members[:1]; r.Member(bob.acct) }), alice.token)
	if code != 400 && code != 422 {
		t.Fatalf("dropped member: %d %s", code, ae.Message)
	}
	forged := req
	fr, _ := format.ParseRoster(req.Roster)
	forged.Roster = signRoster(t, fr, bob.signer)
	code, ae, _ = post(forged, alice.token)
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)
	mustContain(t, ae.Message, "identity key")
	badSig := req
	badSig.Roster = bytes.Clone(req.Roster)
	badSig.Roster[len(badSig.Roster)-1] ^= 1
	code, ae, _ = post(badSig, alice.token)
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)
	mustContain(t, ae.Message, "bad signature")
	wrongInvite := req
	wrongInvite.Invites = [][]byte{invite(t, st, bob, format.ShareRead, 1)}
	code, ae, _ = post(wrongInvite, alice.token)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	var rr api.RosterResponse
	if code, _ := e.call("GET", path, alice.token, nil, &rr); code != 200 {
		t.Fatalf("roster get: %d", code)
	}
	if ro, _ := format.ParseRoster(rr.Roster); ro.Generation != 1 || rr.Head != st.head.Version {
		t.Fatalf("roster after refusals: generation %d, head %d", ro.Generation, rr.Head)
	}

	// The revoke itself: roster, invites and rotation commit in one request.
	code, ae, resp := post(req, alice.token)
	if code != 200 || resp.Generation != 2 || resp.Commit == nil {
		t.Fatalf("revoke: %d %s: %+v", code, ae.Message, resp)
	}
	st.accept(*req.Commit)
	if c := lastOf(e.feed(alice)); c.Version != 0 {
		t.Fatalf("alice's last entry %+v, want the sharing event after the commit", c)
	}
	// Carol is out: no reads, no writes, no roster; her feed has the event, not the commit.
	code, ae = e.headOf(carol, st.tree())
	wantErr(t, code, ae, 404, api.CodeNotFound)
	code, ae = e.call("GET", path, carol.token, nil, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	creq, _ := st.as(carol).build(st.folder(st.root, "after revoke"))
	code, ae, _ = st.post(creq)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	if c := lastOf(e.feed(carol)); c.Tree != st.tree() || c.Version != 0 {
		t.Fatalf("carol's last entry = %+v", c)
	}
	// Bob keeps access and gets the re-key invite as an accepted member.
	if code, _ := e.headOf(bob, st.tree()); code != 200 {
		t.Fatalf("bob after revoke: %d", code)
	}
	var invs api.InvitesResponse
	e.call("GET", "/v1/invites", bob.token, nil, &invs)
	if len(invs.Invites) != 1 || invs.Invites[0].Epoch != 2 || invs.Invites[0].Status != api.StatusAccepted {
		t.Fatalf("bob's invites after revoke = %+v", invs.Invites)
	}
	e.call("GET", path, bob.token, nil, &rr)
	members := map[coffer.AccountID]string{}
	for _, m := range rr.Members {
		members[m.Account] = m.Status
	}
	if members[carol.acct] != api.StatusRemoved || members[bob.acct] != api.StatusAccepted || rr.Owner != alice.acct {
		t.Fatalf("members after revoke = %v", members)
	}
	// Replaying the old request is a stale generation.
	code, ae, _ = post(req, alice.token)
	wantErr(t, code, ae, 409, api.CodeConflict)
}

func TestShareDeclineLeave(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	st := e.share(alice, map[*user]uint8{bob: format.ShareWrite})
	tp := "/v1/invites/" + st.tree().String()
	if code, ae := e.call("POST", tp+"/decline", bob.token, nil, nil); code != 204 {
		t.Fatalf("decline: %d %s", code, ae.Message)
	}
	var shares api.SharesResponse
	e.call("GET", "/v1/shares", alice.token, nil, &shares)
	if len(shares.Outgoing) != 1 || len(shares.Outgoing[0].Members) != 1 || shares.Outgoing[0].Members[0].Status != api.StatusDeclined ||
		shares.Outgoing[0].Members[0].Username != "bob" || len(shares.Incoming) != 0 {
		t.Fatalf("alice's shares = %+v", shares)
	}
	code, ae := e.headOf(bob, st.tree())
	wantErr(t, code, ae, 404, api.CodeNotFound)
	// A declined invite can still be accepted, then left.
	e.acceptInvite(bob, st, 1)
	e.call("GET", "/v1/shares", bob.token, nil, &shares)
	if len(shares.Incoming) != 1 || shares.Incoming[0].Status != api.StatusAccepted || shares.Incoming[0].OwnerUsername != "alice" || shares.Incoming[0].Role != format.ShareWrite {
		t.Fatalf("bob's shares = %+v", shares)
	}
	if code, ae := e.call("POST", "/v1/trees/"+st.tree().String()+"/leave", bob.token, nil, nil); code != 204 {
		t.Fatalf("leave: %d %s", code, ae.Message)
	}
	code, ae = e.headOf(bob, st.tree())
	wantErr(t, code, ae, 404, api.CodeNotFound)
	code, ae = e.call("POST", tp+"/accept", bob.token, api.InviteAcceptRequest{Epoch: 1}, nil)
	wantErr(t, code, ae, 404, api.CodeNotFound)
	var invs api.InvitesResponse
	e.call("GET", "/v1/invites", bob.token, nil, &invs)
	if len(invs.Invites) != 0 {
		t.Fatalf("bob still has %d invites after leaving", len(invs.Invites))
	}
	// The owner is not a member.
	code, ae = e.call("POST", "/v1/trees/"+st.tree().String()+"/leave", alice.token, nil, nil)
	wantErr(t, code, ae, 403, api.CodeForbidden)
	// A key rotation needs no invite for a member who left (and leaves it left).
	next := *st.roster
	next.Generation, next.Epoch = 2, 2
	raw := signRoster(t, &next, alice.signer)
	var resp api.RosterUpdateResponse
	if code, ae := e.call("POST", "/v1/trees/"+st.tree().String()+"/roster", alice.token, api.RosterUpdateRequest{Roster: raw}, &resp); code != 200 {
		t.Fatalf("rotation after leave: %d %s", code, ae.Message)
	}
	e.call("GET", "/v1/shares", bob.token, nil, &shares)
	if len(shares.Incoming) != 1 || shares.Incoming[0].Status != api.StatusLeft {
		t.Fatalf("bob's shares after rotation = %+v", shares.Incoming)
	}
	// A new invite (roster generation 3 re-sends it) restores the invited status.
	next.Generation = 3
	raw = signRoster(t, &next, alice.signer)
	if code, ae := e.call("POST", "/v1/trees/"+st.tree().String()+"/roster", alice.token,
		api.RosterUpdateRequest{Roster: raw, Invites: [][]byte{invite(t, st, bob, format.ShareWrite, 2)}}, &resp); code != 200 {
		t.Fatalf("re-invite: %d %s", code, ae.Message)
	}
	e.call("GET", "/v1/invites", bob.token, nil, &invs)
	if len(invs.Invites) != 1 || invs.Invites[0].Status != api.StatusInvited {
		t.Fatalf("bob's invites after re-invite = %+v", invs.Invites)
	}
}

func TestShareCreateRefusals(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	try := func(mod func(st *sharedTree, req *api.ShareCreateRequest)) (int, api.Error) {
		st, req := e.newShared(alice, map[*user]uint8{bob: format.ShareRead})
		mod(st, &req)
		return e.call("POST", "/v1/trees", alice.token, req, nil)
	}
	code, ae := try(func(st *sharedTree, req *api.ShareCreateRequest) { req.Invites = nil })
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	code, ae = try(func(st *sharedTree, req *api.ShareCreateRequest) { req.Roster = signRoster(t, st.roster, bob.signer) })
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)
	code, ae = try(func(st *sharedTree, req *api.ShareCreateRequest) { req.Tree = coffer.NewTreeID() })
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	code, ae = try(func(st *sharedTree, req *api.ShareCreateRequest) {
		req.Invites = [][]byte{invite(t, st, bob, format.ShareWrite, 1)} // role differs from the roster's
	})
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	code, ae = try(func(st *sharedTree, req *api.ShareCreateRequest) {
		st.roster.Generation = 2
		req.Roster = signRoster(t, st.roster, alice.signer)
	})
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	code, ae = try(func(st *sharedTree, req *api.ShareCreateRequest) {
		h, _ := format.ParseHead(req.Commit.Head)
		h.StateRoot[0] ^= 1
		h.Sign(alice.signer)
		req.Commit.Head = h.Marshal()
	})
	wantErr(t, code, ae, 422, api.CodeInvalidCommit)
	// Bob cannot create a tree whose roster names alice as owner.
	st, req := e.newShared(alice, nil)
	_ = st
	code, ae = e.call("POST", "/v1/trees", bob.token, req, nil)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	// Taken tree ID.
	code, ae = e.call("POST", "/v1/trees", alice.token, req, nil)
	if code != 200 {
		t.Fatalf("create without members: %d %s", code, ae.Message)
	}
	code, ae = e.call("POST", "/v1/trees", alice.token, req, nil)
	wantErr(t, code, ae, 409, api.CodeExists)
	if r := e.request("GET", "/v1/trees/"+req.Tree.String()+"/roster", bob.token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("bob reads a roster he is not in: %d", r.StatusCode)
	}
}

func TestBundleUpdate(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	next := func(gen uint64) (*format.Bundle, api.BundleUpdateRequest) {
		b := *alice.bundle
		b.Generation = gen
		b.Shares = []format.ShareKey{{Tree: coffer.TreeID{1}, Key: format.NewTreeKey(), Role: format.ShareWrite, Epoch: 1, Owner: b.Account, OwnerKey: b.SigningPublic()}}
		return &b, api.BundleUpdateRequest{Bundle: b.Seal(alice.mk), Generation: gen, PublicKeys: b.PublicKeys("alice").Marshal()}
	}
	put := func(req api.BundleUpdateRequest) (int, api.Error) {
		return e.call("PUT", "/v1/account/bundle", alice.token, req, nil)
	}
	// Refusals.
	_, req := next(3)
	code, ae := put(req)
	wantErr(t, code, ae, 409, api.CodeConflict)
	b2, req := next(2)
	bad := req
	bad.PublicKeys = alice.bundle.PublicKeys("alice").Marshal() // generation 1
	code, ae = put(bad)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	other := *b2
	other.KEMSeed[0] ^= 1
	bad = req
	bad.PublicKeys = other.PublicKeys("alice").Marshal()
	code, ae = put(bad)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	mustContain(t, ae.Message, "must not change")
	bad = req
	bad.PublicKeys = b2.PublicKeys("bob").Marshal()
	code, ae = put(bad)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	bad = req
	bad.Bundle = bytes.Clone(req.Bundle)
	bad.Bundle[27] = 9 // header generation
	code, ae = put(bad)
	wantErr(t, code, ae, 400, api.CodeBadRequest)
	code, ae = e.call("PUT", "/v1/account/bundle", bob.token, req, nil) // alice's bundle, bob's session
	wantErr(t, code, ae, 400, api.CodeBadRequest)

	// Success: the account serves the new bundle and a matching public-key record.
	if code, ae := put(req); code != 204 {
		t.Fatalf("bundle update: %d %s", code, ae.Message)
	}
	var info api.AccountInfo
	e.call("GET", "/v1/account", alice.token, nil, &info)
	got, err := format.OpenBundle(info.Bundle, alice.mk, alice.acct)
	if err != nil || info.BundleGeneration != 2 || got.Generation != 2 || len(got.Shares) != 1 {
		t.Fatalf("account after update: generation %d, %v", info.BundleGeneration, err)
	}
	pk, err := format.ParsePublicKeys(info.PublicKeys)
	if err != nil || pk.Matches(got) != nil {
		t.Fatalf("public keys after update do not match the bundle: %v", err)
	}
	code, ae = put(req)
	wantErr(t, code, ae, 409, api.CodeConflict)
}
