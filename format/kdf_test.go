package format

import (
	"bytes"
	"strings"
	"testing"

	"coffer"
)

func TestKDFCheck(t *testing.T) {
	d := DefaultKDF()
	if err := d.Check(MinKDF()); err != nil {
		t.Fatalf("default rejected: %v", err)
	}
	if d.Salt == DefaultKDF().Salt {
		t.Fatal("two DefaultKDF salts are equal")
	}
	if d.Time != 3 || d.MemoryKiB != 65536 || d.Threads != 1 {
		t.Fatalf("DefaultKDF = %+v", d)
	}
	mod := func(f func(*KDFParams)) KDFParams { p := d; f(&p); return p }
	cases := []struct {
		p    KDFParams
		want string
	}{
		{mod(func(p *KDFParams) { p.Time = 2 }), "time 2 below minimum 3"},
		{mod(func(p *KDFParams) { p.Time = 17 }), "time 17 above maximum 16"},
		{mod(func(p *KDFParams) { p.MemoryKiB = 8192 }), "memory 8192 KiB below minimum 65536 KiB"},
		{mod(func(p *KDFParams) { p.MemoryKiB = 4194305 }), "memory 4194305 KiB above maximum"},
		{mod(func(p *KDFParams) { p.Threads = 0 }), "threads 0 below minimum 1"},
		{mod(func(p *KDFParams) { p.Threads = 17 }), "threads 17 above maximum"},
		{mod(func(p *KDFParams) { p.Salt = [16]byte{} }), "salt"},
	}
	for _, c := range cases {
		wantErr(t, c.p.Check(MinKDF()), coffer.ErrInvalid, c.want)
	}
	// Boundaries are accepted.
	for _, p := range []KDFParams{
		mod(func(p *KDFParams) { p.Time, p.MemoryKiB, p.Threads = 16, 4194304, 16 }),
	} {
		if err := p.Check(MinKDF()); err != nil {
			t.Fatalf("maxima rejected: %v", err)
		}
	}
	// A lowered minimum (tests) still refuses zero time and threads.
	if err := weakKDF().Check(KDFParams{}); err != nil {
		t.Fatalf("weak params vs zero min: %v", err)
	}
	wantErr(t, KDFParams{MemoryKiB: 64, Threads: 1, Salt: id16(1)}.Check(KDFParams{}), coffer.ErrInvalid, "time 0")
}

func TestDerivePasswordKeys(t *testing.T) {
	p := weakKDF()
	a := DerivePasswordKeys([]byte("correct horse"), p)
	b := DerivePasswordKeys([]byte("correct horse"), p)
	if !bytes.Equal(a.Login, b.Login) || a.Wrap != b.Wrap {
		t.Fatal("not deterministic")
	}
	if bytes.Equal(a.Login.Seed(), a.Wrap[:]) {
		t.Fatal("login seed equals wrap key")
	}
	c := DerivePasswordKeys([]byte("correct horsf"), p)
	if bytes.Equal(a.Login, c.Login) || a.Wrap == c.Wrap {
		t.Fatal("different passwords, same keys")
	}
	p2 := p
	p2.Salt[0]++
	d := DerivePasswordKeys([]byte("correct horse"), p2)
	if a.Wrap == d.Wrap {
		t.Fatal("different salts, same keys")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("zero time did not panic")
		}
	}()
	DerivePasswordKeys([]byte("x"), KDFParams{MemoryKiB: 64, Threads: 1})
}

func TestRecoveryKey(t *testing.T) {
	mk := MasterKey(random32(testRand(1)))
	rk := mk.RecoveryKey()
	if rk != mk.RecoveryKey() || RecoveryKey(mk) == rk {
		t.Fatal("recovery key not a deterministic derivation")
	}
	s := rk.String()
	if len(s) != RecoveryKeyLen || strings.Count(s, "-") != 10 {
		t.Fatalf("String() = %q (len %d)", s, len(s))
	}
	for _, g := range strings.Split(s, "-")[:10] {
		if len(g) != 5 {
			t.Fatalf("group %q", g)
		}
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", " "), strings.ReplaceAll(s, "-", ""), " " + s + "\n"} {
		got, err := ParseRecoveryKey(in)
		if err != nil || got != rk {
			t.Fatalf("ParseRecoveryKey(%q) = %x, %v", in, got, err)
		}
	}
	// Every single-character substitution is caught (checksum or canonical encoding).
	clean := strings.ReplaceAll(s, "-", "")
	for i := range clean {
		for _, c := range []byte("A7Z") {
			if clean[i] == c {
				continue
			}
			bad := clean[:i] + string(c) + clean[i+1:]
			if _, err := ParseRecoveryKey(bad); err == nil {
				t.Fatalf("accepted substitution at %d: %q", i, bad)
			} else {
				wantErr(t, err, coffer.ErrInvalid, "recovery key")
			}
		}
	}
	for _, bad := range []string{"", clean[:54], clean + "A", clean[:54] + "1", clean[:54] + "="} {
		_, err := ParseRecoveryKey(bad)
		wantErr(t, err, coffer.ErrInvalid, "recovery key")
	}
	a, b := DeriveRecoveryKeys(rk), DeriveRecoveryKeys(rk)
	if !bytes.Equal(a.Login, b.Login) || a.Wrap != b.Wrap || bytes.Equal(a.Login.Seed(), a.Wrap[:]) {
		t.Fatal("recovery keys not deterministic or not separated")
	}
}
