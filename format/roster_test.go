package format

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"coffer"
)

func testMember(seed byte, role, state uint8, until uint64) Member {
	b := testBundle(seed)
	p := b.PublicKeys("m")
	return Member{Account: b.Account, Role: role, State: state, Until: until, Signing: [32]byte(p.Signing), KEMFingerprint: p.KEMFingerprint()}
}

func testRoster(t *testing.T) (*Roster, ed25519.PrivateKey) {
	t.Helper()
	owner := testSigner(1)
	r := &Roster{Tree: coffer.TreeID(id16(9)), Owner: coffer.AccountID(id16(0xee)), Generation: 1, Epoch: 1,
		Members: []Member{testMember(3, ShareWrite, MemberActive, 0), testMember(2, ShareRead, MemberActive, 0)}}
	r.SortMembers()
	if err := r.Sign(owner); err != nil {
		t.Fatal(err)
	}
	return r, owner
}

func TestRosterRoundTrip(t *testing.T) {
	r, owner := testRoster(t)
	raw := r.Marshal()
	got, err := ParseRoster(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), raw) || len(got.Members) != 2 {
		t.Fatalf("round trip differs")
	}
	if err := got.CheckOwner(r.Owner, owner.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, got.CheckOwner(r.Owner, testSigner(2).Public().(ed25519.PublicKey)), coffer.ErrAuth, "roster")
	wantErr(t, got.CheckOwner(coffer.AccountID{1}, owner.Public().(ed25519.PublicKey)), coffer.ErrAuth, "roster")
	for _, m := range mutations(raw) {
		_, err := ParseRoster(m)
		authOrCorrupt(t, err, "roster")
	}
	if m := got.Member(r.Members[1].Account); m == nil || *m != r.Members[1] {
		t.Fatal("Member lookup failed")
	}
	if got.Member(coffer.AccountID{7}) != nil {
		t.Fatal("Member found a stranger")
	}
	empty := &Roster{Tree: r.Tree, Owner: r.Owner, Generation: 1, Epoch: 1}
	if err := empty.Sign(owner); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRoster(empty.Marshal()); err != nil {
		t.Fatal(err)
	}
}

func TestRosterRules(t *testing.T) {
	base, owner := testRoster(t)
	cases := map[string]func(r *Roster){
		"generation":              func(r *Roster) { r.Generation = 0 },
		"epoch":                   func(r *Roster) { r.Epoch = 0 },
		"is the owner":            func(r *Roster) { r.Members[0].Account = r.Owner },
		"unknown role":            func(r *Roster) { r.Members[0].Role = 0 },
		"unknown state":           func(r *Roster) { r.Members[1].State = 2 },
		"active with non-zero":    func(r *Roster) { r.Members[1].Until = 1 },
		"not sorted":              func(r *Roster) { r.Members[0], r.Members[1] = r.Members[1], r.Members[0] },
		"not sorted by account o": func(r *Roster) { r.Members[1].Account = r.Members[0].Account },
	}
	for want, mut := range cases {
		r := *base
		r.Members = append([]Member(nil), base.Members...)
		mut(&r)
		wantErr(t, r.Sign(owner), coffer.ErrInvalid, want)
		// The same roster signed anyway must not parse.
		copy(r.Sig[:], ed25519.Sign(owner, domain("coffer/v1 roster", r.signedPart())))
		_, err := ParseRoster(r.Marshal())
		wantErr(t, err, coffer.ErrCorrupt, want)
	}
	big := &Roster{Tree: base.Tree, Owner: base.Owner, Generation: 1, Epoch: 1, Members: make([]Member, MaxRosterMembers+1)}
	wantErr(t, big.Sign(owner), coffer.ErrInvalid, "maximum")
	raw := base.Marshal()
	raw[48], raw[49] = 0xff, 0xff // n = 65535
	_, err := ParseRoster(raw)
	wantErr(t, err, coffer.ErrCorrupt, "member count")
}

func TestRosterAuthority(t *testing.T) {
	owner := testSigner(1)
	w, rd, gone, goneReader := testMember(2, ShareWrite, MemberActive, 0), testMember(3, ShareRead, MemberActive, 0),
		testMember(4, ShareWrite, MemberRemoved, 10), testMember(5, ShareRead, MemberRemoved, 10)
	r := &Roster{Tree: coffer.TreeID{1}, Owner: coffer.AccountID{0xff}, Generation: 4, Epoch: 2, Members: []Member{w, rd, gone, goneReader}}
	r.SortMembers()
	if err := r.Sign(owner); err != nil {
		t.Fatal(err)
	}
	stranger := testSigner(9).Public().(ed25519.PublicKey)
	for _, c := range []struct {
		name    string
		key     []byte
		version uint64
		head    bool
		author  bool
	}{
		{"owner", owner.Public().(ed25519.PublicKey), 99, true, true},
		{"writer", w.Signing[:], 99, true, true},
		{"reader", rd.Signing[:], 1, false, false},
		{"removed writer before until", gone.Signing[:], 10, true, true},
		{"removed writer after until", gone.Signing[:], 11, false, true},
		{"removed reader", goneReader.Signing[:], 1, false, false},
		{"stranger", stranger, 1, false, false},
	} {
		if got := r.MayWriteHead(c.key, c.version); got != c.head {
			t.Errorf("%s: MayWriteHead = %v, want %v", c.name, got, c.head)
		}
		if got := r.MayAuthor(c.key); got != c.author {
			t.Errorf("%s: MayAuthor = %v, want %v", c.name, got, c.author)
		}
	}
}

func TestRosterSuccessor(t *testing.T) {
	prev, owner := testRoster(t)
	next := func(mut func(r *Roster)) *Roster {
		r := *prev
		r.Members = append([]Member(nil), prev.Members...)
		r.Generation++
		mut(&r)
		r.SortMembers()
		if err := r.Sign(owner); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	ok := map[string]*Roster{
		"add member":         next(func(r *Roster) { r.Members = append(r.Members, testMember(4, ShareRead, MemberActive, 0)) }),
		"rotate key":         next(func(r *Roster) { r.Epoch++ }),
		"raise role":         next(func(r *Roster) { r.Members[1].Role = ShareWrite }),
		"remove with rotate": next(func(r *Roster) { r.Epoch++; r.Members[0].State, r.Members[0].Until = MemberRemoved, 7 }),
	}
	for name, n := range ok {
		if err := CheckRosterSuccessor(prev, n, 7); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	removed := ok["remove with rotate"]
	readd := *removed
	readd.Members = append([]Member(nil), removed.Members...)
	readd.Generation++
	readd.Members[0].State, readd.Members[0].Until = MemberActive, 0
	_ = readd.Sign(owner)
	if err := CheckRosterSuccessor(removed, &readd, 9); err != nil {
		t.Errorf("re-add: %v", err)
	}
	bad := map[string]*Roster{
		"generation":               next(func(r *Roster) { r.Generation++ }),
		"epoch 3 does not follow":  next(func(r *Roster) { r.Epoch += 2 }),
		"dropped":                  next(func(r *Roster) { r.Members = r.Members[1:] }),
		"keys changed":             next(func(r *Roster) { r.Members[0].KEMFingerprint[0] ^= 1 }),
		"lowered":                  next(func(r *Roster) { r.Members[0].Role, r.Members[1].Role = ShareRead, ShareRead }),
		"want the current head":    next(func(r *Roster) { r.Epoch++; r.Members[0].State, r.Members[0].Until = MemberRemoved, 6 }),
		"the tree key must rotate": next(func(r *Roster) { r.Members[0].State, r.Members[0].Until = MemberRemoved, 7 }),
		"new member":               next(func(r *Roster) { r.Members = append(r.Members, testMember(4, ShareRead, MemberRemoved, 7)) }),
		"another tree":             next(func(r *Roster) { r.Tree[0] ^= 1 }),
	}
	for want, n := range bad {
		wantErr(t, CheckRosterSuccessor(prev, n, 7), coffer.ErrInvalid, want)
	}
	other := next(func(*Roster) {})
	_ = other.Sign(testSigner(5))
	wantErr(t, CheckRosterSuccessor(prev, other, 7), coffer.ErrInvalid, "another owner key")
	again := *removed
	again.Members = append([]Member(nil), removed.Members...)
	again.Generation++
	again.Members[0].Until = 8
	_ = again.Sign(owner)
	wantErr(t, CheckRosterSuccessor(removed, &again, 9), coffer.ErrInvalid, "until of a removed member changed")
}

func TestBodyMount(t *testing.T) {
	signer := testSigner(1)
	nk, tk := NodeKey(id32(1)), TreeKey(id32(2))
	old := NodeKey(id32(3))
	body := &Body{Name: "Shared", Mode: 0o755, Mount: coffer.TreeID{1}, PreviousKey: &old}
	r, err := SealRecord(KindFolder, coffer.NodeID{2}, coffer.NodeID{3}, 1, [32]byte{}, nk, tk.WrapKey(), body, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.OpenBody(nk)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mount != body.Mount || got.PreviousKey == nil || *got.PreviousKey != old {
		t.Fatalf("body = %+v", got)
	}
	_, err = SealRecord(KindFile, coffer.NodeID{2}, coffer.NodeID{3}, 1, [32]byte{}, nk, tk.WrapKey(),
		&Body{Name: "f", Mount: coffer.TreeID{1}, Content: testContent(ContentKey(id32(4)), 0, DefaultChunkSize)}, signer)
	wantErr(t, err, coffer.ErrInvalid, "only a folder is a mount")
	_, err = SealRecord(KindFolder, coffer.NodeID{2}, coffer.NodeID{}, 1, [32]byte{}, nk, tk.WrapKey(),
		&Body{Name: "r", Role: RoleRoot, Mount: coffer.TreeID{1}}, signer)
	wantErr(t, err, coffer.ErrInvalid, "not a mount")
}

func FuzzParseRoster(f *testing.F) {
	seedVectors(f, "roster")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRoster(b)
		if err != nil {
			return
		}
		roundTrip(t, b, r.Marshal())
		_ = r.MayWriteHead(r.OwnerKey[:], 1)
		_ = r.CheckOwner(r.Owner, r.OwnerKey[:])
	})
}
