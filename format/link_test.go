package format

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"coffer"
)

func TestLink(t *testing.T) {
	rng := testRand(30)
	owner := testSigner(4)
	nk := NodeKey(random32(rng))
	id, s := LinkID(id16(0x11)), LinkSecret(random32(rng))
	tree, node := coffer.TreeID(id16(0x22)), coffer.NodeID(id16(0x33))
	kdf := weakKDF()
	for _, tc := range []struct {
		flags uint8
		kdf   KDFParams
		pw    []byte
		kind  Kind
	}{{0, KDFParams{}, nil, KindFile}, {LinkFlagPassword, kdf, []byte("hunter2"), KindFolder}} {
		keys := DeriveLinkKeys(s, tc.pw, tc.kdf)
		l, err := sealLink(rng, id, tree, node, tc.kind, tc.flags, tc.kdf, keys, random32(rng), nk[:], owner)
		if err != nil {
			t.Fatal(err)
		}
		raw := l.Marshal()
		if len(raw) != LinkLen || LinkLen != 295 {
			t.Fatalf("length %d", len(raw))
		}
		got, err := ParseLink(raw)
		if err != nil || !bytes.Equal(got.Marshal(), raw) || got.VerifySignature() != nil {
			t.Fatalf("round trip: %v", err)
		}
		if k, err := got.OpenNodeKey(keys); err != nil || k != nk {
			t.Fatalf("open: %v", err)
		}
		// Wrong secret or password.
		var s2 LinkSecret
		s2[0] = 1
		_, err = got.OpenNodeKey(DeriveLinkKeys(s2, tc.pw, tc.kdf))
		wantErr(t, err, coffer.ErrAuth, "link")
		if tc.kdf != (KDFParams{}) {
			wrong := DeriveLinkKeys(s, []byte("hunter3"), tc.kdf)
			_, err = got.OpenNodeKey(wrong)
			wantErr(t, err, coffer.ErrAuth, "link")
			if bytes.Equal(wrong.Auth, keys.Auth) {
				t.Fatal("auth key ignores the password")
			}
		}
		for _, m := range mutations(raw) {
			l, err := ParseLink(m)
			if err == nil {
				err = l.VerifySignature()
			}
			authOrCorrupt(t, err, "link")
			// Even unsigned, a changed prefix or wrapped key fails to open.
			if l, err := ParseLink(m); err == nil && !bytes.Equal(m[:linkPrefixLen+120], raw[:linkPrefixLen+120]) {
				_, err = l.OpenNodeKey(keys)
				authOrCorrupt(t, err, "link open")
			}
		}
	}
	// Structural rules.
	keys := DeriveLinkKeys(s, nil, KDFParams{})
	for name, c := range map[string]struct {
		kind  Kind
		flags uint8
		kdf   KDFParams
	}{
		"kind":                 {KindTombstone, 0, KDFParams{}},
		"unknown bits":         {KindFile, 4, KDFParams{}},
		"upload-only":          {KindFile, LinkFlagUploadOnly, KDFParams{}},
		"password link":        {KindFile, LinkFlagPassword, KDFParams{}},
		"link without passwor": {KindFile, 0, kdf},
	} {
		_, err := SealLink(id, tree, node, c.kind, c.flags, c.kdf, keys, nk, owner)
		wantErr(t, err, coffer.ErrInvalid, name)
		// The same record built by hand fails to parse.
		l := &Link{ID: id, Tree: tree, Node: node, Kind: c.kind, Flags: c.flags, KDF: c.kdf}
		_, err = ParseLink(l.Marshal())
		wantErr(t, err, coffer.ErrCorrupt, name)
	}
	// The auth message binds link and challenge.
	var ch [32]byte
	m := LinkAuthMessage(id, ch)
	if !bytes.HasPrefix(m, []byte("coffer/v1 link auth proof\x00")) || len(m) != 26+48 {
		t.Fatalf("LinkAuthMessage %q", m)
	}
}

func TestLinkURL(t *testing.T) {
	id, s := LinkID(id16(0xfb)), LinkSecret(id32(0xfe))
	u := FormatLinkURL("https://drive.example.com", id, s)
	if !strings.HasPrefix(u, "https://drive.example.com/s/") || strings.Contains(u, "=") {
		t.Fatalf("url %q", u)
	}
	server, gid, gs, err := ParseLinkURL(u)
	if err != nil || server != "https://drive.example.com" || gid != id || gs != s {
		t.Fatalf("parse: %q %v", server, err)
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "https://example.com/coffer"} {
		if srv, _, _, err := ParseLinkURL(FormatLinkURL(ok, id, s)); err != nil || srv != ok {
			t.Errorf("%q: %q %v", ok, srv, err)
		}
	}
	idp, sp := u[len("https://drive.example.com/s/"):strings.Index(u, "#")], u[strings.Index(u, "#")+1:]
	for _, bad := range []string{
		"", "ftp://x/s/" + idp + "#" + sp, "https:///s/" + idp + "#" + sp, "https://x/s/" + idp,
		"https://x/s/" + idp + "=#" + sp, "https://x/s/" + idp + "#" + sp + "A", "https://x/s/" + idp[:len(idp)-1] + "B#" + sp,
		"https://x/s/" + idp + "#" + sp[:10] + "\n" + sp[10:], "https://x y/s/" + idp + "#" + sp, "https://x//s/" + idp + "#" + sp,
	} {
		_, _, _, err := ParseLinkURL(bad)
		wantErr(t, err, coffer.ErrInvalid, "link url")
	}
}

func TestInvite(t *testing.T) {
	alice, bob, eve := testBundle(40), testBundle(41), testBundle(42)
	alicePub, bobPub, evePub := alice.PublicKeys("alice"), bob.PublicKeys("bob"), eve.PublicKeys("eve")
	tree, tk := coffer.TreeID(id16(0x44)), TreeKey(id32(0x55))
	inv, err := SealInvite(tree, 1, ShareWrite, tk, alice, bobPub)
	if err != nil {
		t.Fatal(err)
	}
	raw := inv.Marshal()
	if len(raw) != InviteLen {
		t.Fatalf("length %d, want %d", len(raw), InviteLen)
	}
	got, err := ParseInvite(raw)
	if err != nil || !bytes.Equal(got.Marshal(), raw) {
		t.Fatalf("round trip: %v", err)
	}
	if k, err := got.Open(bob, alicePub); err != nil || k != tk {
		t.Fatalf("open: %v", err)
	}
	// Wrong recipient, wrong claimed sender.
	_, err = got.Open(eve, alicePub)
	wantErr(t, err, coffer.ErrAuth, "invite")
	_, err = got.Open(bob, evePub)
	wantErr(t, err, coffer.ErrAuth, "invite")
	// Eve re-signing Alice's invite as herself is caught when Bob expects Alice.
	forged := *got
	forged.sign(eve.SigningKey())
	if _, err := ParseInvite(forged.Marshal()); err != nil {
		t.Fatal(err)
	}
	_, err = forged.Open(bob, alicePub)
	wantErr(t, err, coffer.ErrAuth, "")
	for _, m := range mutations(raw) {
		inv, err := ParseInvite(m)
		if err == nil {
			_, err = inv.Open(bob, alicePub)
		}
		authOrCorrupt(t, err, "invite")
	}
	for _, c := range []struct {
		epoch uint32
		role  uint8
		to    *PublicKeys
		want  string
	}{{0, ShareRead, bobPub, "epoch"}, {1, 3, bobPub, "role"}, {1, ShareRead, alicePub, "equals sender"}} {
		_, err := SealInvite(tree, c.epoch, c.role, tk, alice, c.to)
		wantErr(t, err, coffer.ErrInvalid, c.want)
	}
}

// TestNewLinkIDNoLeadingDash: a new link ID never encodes with a leading '-' (it would be taken
// for a flag on the command line).
func TestNewLinkIDNoLeadingDash(t *testing.T) {
	for range 5000 { // P(no ID with first six bits 62 in 5,000 unfiltered draws) ≈ 1e-34
		id := NewLinkID()
		if s := base64.RawURLEncoding.EncodeToString(id[:]); s[0] == '-' {
			t.Fatalf("link ID %s begins with '-'", s)
		}
	}
}
