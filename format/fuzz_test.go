package format

import (
	"bytes"
	"strings"
	"testing"

	"coffer"
)

// seedVectors adds the data of every vector of the given object kind to the corpus.
func seedVectors(f *testing.F, object string) {
	for _, v := range loadVectors(f) {
		if v.Get("object") == object {
			f.Add(v.Data)
		}
	}
}

func roundTrip(t *testing.T, in, out []byte) {
	t.Helper()
	if !bytes.Equal(in, out) {
		t.Fatalf("parse accepted a non-canonical encoding:\n in %x\nout %x", in, out)
	}
}

func FuzzParseRecord(f *testing.F) {
	seedVectors(f, "record")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		roundTrip(t, b, r.Marshal())
		_ = r.VerifySignature()
		if r.Kind != KindTombstone {
			if nk, err := r.OpenKey(WrapKey{}); err == nil {
				_, _ = r.OpenBody(nk)
			}
		}
	})
}

func FuzzParseHead(f *testing.F) {
	seedVectors(f, "head")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHead(b)
		if err != nil {
			return
		}
		roundTrip(t, b, h.Marshal())
		_ = h.VerifySignature()
	})
}

func FuzzParsePublicKeys(f *testing.F) {
	seedVectors(f, "public keys")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePublicKeys(b)
		if err != nil {
			return
		}
		roundTrip(t, b, p.Marshal())
		_ = p.Fingerprint()
	})
}

func FuzzMasterKeyEnvelope(f *testing.F) {
	seedVectors(f, "envelope")
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseMasterKeyEnvelope(b)
		if err != nil {
			return
		}
		roundTrip(t, b, e.Marshal())
		_, _ = OpenMasterKey(b, e.Purpose, e.Account, [32]byte{})
	})
}

func FuzzBodyTLV(f *testing.F) {
	ck := ContentKey(id32(1))
	for _, b := range []*Body{
		{Name: "a", Mode: 0o644},
		{Name: "Documents", MTime: -1, Role: RoleRoot, TrashOrigin: coffer.NodeID{0: 1}},
		{Name: "f", Content: testContent(ck, 0, DefaultChunkSize)},
		{Name: "g", Content: testContent(ck, 200000, 1<<16)},
		{Name: "m", Mount: coffer.TreeID{1}, PreviousKey: &NodeKey{2}},
	} {
		f.Add(marshalBody(b))
	}
	f.Add([]byte{1, 0, 0, 0, 1, 'a', 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := parseBody(b, "body")
		if err != nil {
			return
		}
		roundTrip(t, b, marshalBody(body))
		_ = body.checkKind(KindFile, coffer.NodeID{}, "body")
	})
}

func FuzzBundlePlaintext(f *testing.F) {
	f.Add(testBundle(1).marshalPlain())
	b := testBundle(2)
	b.Shares = nil
	f.Add(b.marshalPlain())
	f.Fuzz(func(t *testing.T, pt []byte) {
		b := &Bundle{Account: coffer.AccountID{1}, Generation: 1}
		if err := parseBundlePlain(b, pt); err != nil {
			return
		}
		roundTrip(t, pt, b.marshalPlain())
	})
}

func FuzzParseRecoveryKey(f *testing.F) {
	for _, v := range loadVectors(f) {
		if v.Get("object") == "recovery key" {
			f.Add(string(v.Data))
		}
	}
	f.Add("aaaaa-aaaaa")
	f.Fuzz(func(t *testing.T, s string) {
		rk, err := ParseRecoveryKey(s)
		if err != nil {
			return
		}
		// The accepted input, normalised, is exactly the canonical form.
		norm := strings.Map(func(r rune) rune {
			switch r {
			case ' ', '-', '\t', '\n', '\r':
				return -1
			}
			return r
		}, strings.ToUpper(s))
		if norm != strings.ReplaceAll(rk.String(), "-", "") {
			t.Fatalf("accepted %q, canonical %q", s, rk.String())
		}
		if again, err := ParseRecoveryKey(rk.String()); err != nil || again != rk {
			t.Fatal("String does not parse back")
		}
	})
}

func FuzzParseLink(f *testing.F) {
	seedVectors(f, "link")
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLink(b)
		if err != nil {
			return
		}
		roundTrip(t, b, l.Marshal())
		_ = l.VerifySignature()
		_, _ = l.OpenNodeKey(&LinkKeys{})
	})
}

func FuzzParseInvite(f *testing.F) {
	seedVectors(f, "invite")
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := ParseInvite(b)
		if err != nil {
			return
		}
		roundTrip(t, b, inv.Marshal())
	})
}

func FuzzParseLinkURL(f *testing.F) {
	for _, v := range loadVectors(f) {
		if u := v.Get("url"); u != "" {
			f.Add(u)
		}
	}
	f.Add("http://127.0.0.1:8080/prefix/s/AAAAAAAAAAAAAAAAAAAAAA#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, u string) {
		server, id, s, err := ParseLinkURL(u)
		if err != nil {
			return
		}
		if got := FormatLinkURL(server, id, s); got != u {
			t.Fatalf("accepted %q, canonical %q", u, got)
		}
	})
}

func FuzzParseDrop(f *testing.F) {
	seedVectors(f, "drop")
	owner := testBundle(50)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDrop(b)
		if err != nil {
			return
		}
		roundTrip(t, b, d.Marshal())
		d.Owner = owner.Account
		_, _ = d.Open(owner)
	})
}

// FuzzDropPlaintext feeds arbitrary plaintexts to the drop parser: it must never panic, and what
// it accepts must re-encode canonically and satisfy the drop rules.
func FuzzDropPlaintext(f *testing.F) {
	var auth [32]byte
	f.Add(marshalDropFile(&DropFile{Path: []string{"a"}, Name: "x", MTime: 1, Mode: 0o644}, auth))
	f.Fuzz(func(t *testing.T, b []byte) {
		df, got, err := parseDropFile(b, "drop")
		if err != nil {
			return
		}
		roundTrip(t, b, marshalDropFile(df, got))
		if err := df.validate("drop"); err != nil {
			t.Fatalf("accepted an invalid drop: %v", err)
		}
	})
}
