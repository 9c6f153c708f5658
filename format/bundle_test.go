package format

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"regexp"
	"testing"

	"coffer"
)

func testBundle(seed byte) *Bundle {
	b := newBundle(testRand(seed), coffer.AccountID(id16(seed)))
	b.Shares = []ShareKey{
		{Tree: coffer.TreeID(id16(1)), Key: TreeKey(id32(2)), Role: ShareRead, Epoch: 1, Owner: coffer.AccountID(id16(200)), OwnerKey: id32(201)},
		{Tree: coffer.TreeID(id16(3)), Key: TreeKey(id32(4)), Role: ShareWrite, Epoch: 7, Owner: b.Account, OwnerKey: b.SigningPublic()},
	}
	return b
}

func TestBundleRoundTrip(t *testing.T) {
	mk := MasterKey(id32(9))
	for _, shares := range [][]ShareKey{nil, testBundle(3).Shares} {
		b := testBundle(3)
		b.Shares = shares
		sealed := b.seal(testRand(4), mk)
		got, err := OpenBundle(sealed, mk, b.Account)
		if err != nil {
			t.Fatal(err)
		}
		if got.Account != b.Account || got.Generation != 1 || got.SigningSeed != b.SigningSeed ||
			got.KEMSeed != b.KEMSeed || got.Tree != b.Tree || got.TreeKey != b.TreeKey || len(got.Shares) != len(shares) {
			t.Fatalf("round trip: %+v vs %+v", got, b)
		}
		for i := range shares {
			if got.Shares[i] != shares[i] {
				t.Fatal("share mismatch")
			}
		}
		_, err = OpenBundle(sealed, MasterKey(id32(8)), b.Account)
		wantErr(t, err, coffer.ErrAuth, "bundle")
		_, err = OpenBundle(sealed, mk, coffer.AccountID(id16(1)))
		wantErr(t, err, coffer.ErrAuth, "bundle")
		for _, m := range mutations(sealed) {
			_, err := OpenBundle(m, mk, b.Account)
			authOrCorrupt(t, err, "bundle")
		}
	}
	if nb := NewBundle(coffer.AccountID(id16(1))); nb.Generation != 1 || nb.SigningSeed == nb.KEMSeed || nb.TreeKey == (TreeKey{}) {
		t.Fatalf("NewBundle = %+v", nb)
	}
}

func TestBundlePlaintextRules(t *testing.T) {
	b := testBundle(5)
	good := b.marshalPlain()
	parse := func(pt []byte) error { return parseBundlePlain(&Bundle{Account: b.Account, Generation: 1}, pt) }
	if err := parse(good); err != nil {
		t.Fatal(err)
	}
	seed, kem := appendTLV(nil, 1, b.SigningSeed[:]), appendTLV(nil, 2, b.KEMSeed[:])
	tree := appendTLV(nil, 3, append(b.Tree[:], b.TreeKey[:]...))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	owner := append(bytes.Repeat([]byte{8}, 16), bytes.Repeat([]byte{9}, 32)...)
	share := func(tr byte, role byte) []byte {
		e := append(append(bytes.Repeat([]byte{tr}, 16), bytes.Repeat([]byte{7}, 32)...), role, 0, 0, 0, 1)
		return append(e, owner...)
	}
	withOwner := func(acct []byte, key []byte) []byte {
		return append(append(share(2, 2)[:53], acct...), key...)
	}
	ownKey := b.SigningPublic()
	cases := map[string][]byte{
		"not strictly increasing": cat(kem, seed, tree),
		"tag 2":                   cat(seed, kem, kem, tree),
		"unknown tag":             cat(seed, kem, tree, appendTLV(nil, 5, nil)),
		"tag 0":                   cat(appendTLV(nil, 0, nil), seed, kem, tree),
		"required tag missing":    cat(seed, tree),
		"length 31":               cat(appendTLV(nil, 1, b.SigningSeed[:31]), kem, tree),
		"account tree":            cat(seed, kem, appendTLV(nil, 3, b.Tree[:])),
		"shares":                  cat(seed, kem, tree, appendTLV(nil, 4, nil)),
		"not sorted":              cat(seed, kem, tree, appendTLV(nil, 4, append(share(2, 1), share(1, 1)...))),
		"duplicate":               cat(seed, kem, tree, appendTLV(nil, 4, append(share(2, 1), share(2, 2)...))),
		"unknown role":            cat(seed, kem, tree, appendTLV(nil, 4, share(2, 3))),
		"epoch zero":              cat(seed, kem, tree, appendTLV(nil, 4, append(append(share(2, 1)[:49], 0, 0, 0, 0), owner...))),
		"multiple of 101":         cat(seed, kem, tree, appendTLV(nil, 4, share(2, 1)[:53])),
		"share 0: zero owner":     cat(seed, kem, tree, appendTLV(nil, 4, withOwner(make([]byte, 16), ownKey[:]))),
		"or owner key":            cat(seed, kem, tree, appendTLV(nil, 4, withOwner(bytes.Repeat([]byte{8}, 16), make([]byte, 32)))),
		"not with its own key":    cat(seed, kem, tree, appendTLV(nil, 4, withOwner(b.Account[:], bytes.Repeat([]byte{9}, 32)))),
		"and role write":          cat(seed, kem, tree, appendTLV(nil, 4, append(share(2, 1)[:53], append(b.Account[:], ownKey[:]...)...))),
		"truncated item header":   cat(seed, kem, tree, []byte{4, 0}),
		"exceeds remaining":       cat(seed, kem, tree, []byte{4, 0, 0, 0, 49}),
	}
	for want, pt := range cases {
		wantErr(t, parse(pt), coffer.ErrCorrupt, want)
	}
}

func TestPublicKeys(t *testing.T) {
	b := testBundle(6)
	p := b.PublicKeys("alice")
	raw := p.Marshal()
	got, err := ParsePublicKeys(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), raw) || got.Username != "alice" || got.Account != b.Account {
		t.Fatal("round trip")
	}
	if err := got.Matches(b); err != nil {
		t.Fatal(err)
	}
	other := testBundle(7)
	wantErr(t, got.Matches(other), coffer.ErrAuth, "public keys")
	b2 := *b
	b2.Generation = 2
	wantErr(t, got.Matches(&b2), coffer.ErrAuth, "")
	// A record signed by someone else's key (server substitution) fails.
	forged := *p
	forged.Signing = other.SigningKey().Public().(ed25519.PublicKey)
	_, err = ParsePublicKeys(forged.Marshal())
	wantErr(t, err, coffer.ErrAuth, "public keys")
	for _, m := range mutations(raw) {
		_, err := ParsePublicKeys(m)
		authOrCorrupt(t, err, "public keys")
	}
	fp := p.Fingerprint()
	if !regexp.MustCompile(`^(\d{5} ){7}\d{5}$`).MatchString(fp) || fp == other.PublicKeys("alice").Fingerprint() {
		t.Fatalf("fingerprint %q", fp)
	}
	// The KEM key works end to end with crypto/hpke.
	pub, err := hpke.MLKEM768X25519().NewPublicKey(got.KEM)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := b.KEMKey()
	if pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), ct); err != nil || string(pt) != "hi" {
		t.Fatalf("hpke: %v", err)
	}
	// Bad usernames and generation 0 are structural errors.
	bad := b.PublicKeys("Alice")
	_, err = ParsePublicKeys(bad.Marshal())
	wantErr(t, err, coffer.ErrCorrupt, "username")
	b3 := *b
	b3.Generation = 0
	_, err = ParsePublicKeys(b3.PublicKeys("alice").Marshal())
	wantErr(t, err, coffer.ErrCorrupt, "generation")
}
