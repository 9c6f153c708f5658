package format

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"coffer"
)

func TestMasterKeyEnvelope(t *testing.T) {
	rng := testRand(2)
	mk := MasterKey(random32(rng))
	acct := coffer.AccountID(id16(0xac))
	kdf := weakKDF()
	pw := DerivePasswordKeys([]byte("pw"), kdf)
	rec := DeriveRecoveryKeys(mk.RecoveryKey())

	env := sealMasterKey(rng, mk, PurposePassword, acct, kdf, pw.Wrap)
	if len(env) != EnvelopeLen || EnvelopeLen != 106 {
		t.Fatalf("envelope length %d", len(env))
	}
	got, err := OpenMasterKey(env, PurposePassword, acct, pw.Wrap)
	if err != nil || got != mk {
		t.Fatalf("open: %v", err)
	}
	if k, err := EnvelopeKDF(env); err != nil || k != kdf {
		t.Fatalf("EnvelopeKDF = %+v, %v", k, err)
	}
	e, err := ParseMasterKeyEnvelope(env)
	if err != nil || !bytes.Equal(e.Marshal(), env) {
		t.Fatalf("parse/marshal round trip: %v", err)
	}

	renv := SealMasterKey(mk, PurposeRecovery, acct, KDFParams{}, rec.Wrap)
	if got, err := OpenMasterKey(renv, PurposeRecovery, acct, rec.Wrap); err != nil || got != mk {
		t.Fatalf("recovery open: %v", err)
	}
	if _, err := EnvelopeKDF(renv); err == nil {
		t.Fatal("EnvelopeKDF accepted a recovery envelope")
	}

	// Wrong key, account, purpose.
	_, err = OpenMasterKey(env, PurposePassword, acct, rec.Wrap)
	wantErr(t, err, coffer.ErrAuth, "master key envelope")
	_, err = OpenMasterKey(env, PurposePassword, coffer.AccountID(id16(1)), pw.Wrap)
	wantErr(t, err, coffer.ErrAuth, "master key envelope")
	_, err = OpenMasterKey(env, PurposeRecovery, acct, pw.Wrap)
	wantErr(t, err, coffer.ErrAuth, "master key envelope")
	// A server swapping the KDF parameters (to weaken them) breaks the AAD.
	swapped := bytes.Clone(env)
	binary.BigEndian.PutUint32(swapped[21:], 2)
	_, err = OpenMasterKey(swapped, PurposePassword, acct, pw.Wrap)
	wantErr(t, err, coffer.ErrAuth, "")

	for _, m := range mutations(env) {
		_, err := OpenMasterKey(m, PurposePassword, acct, pw.Wrap)
		authOrCorrupt(t, err, "envelope")
	}
	// Structural rules.
	bad := func(f func(b []byte)) []byte { b := bytes.Clone(env); f(b); return b }
	for field, b := range map[string][]byte{
		"magic":       bad(func(b []byte) { b[3] = '2' }),
		"purpose":     bad(func(b []byte) { b[4] = 3 }),
		"kdf time":    bad(func(b []byte) { binary.BigEndian.PutUint32(b[21:], 0) }),
		"kdf memory":  bad(func(b []byte) { binary.BigEndian.PutUint32(b[25:], 0) }),
		"kdf threads": bad(func(b []byte) { b[29] = 0 }),
		"kdf salt":    bad(func(b []byte) { copy(b[30:46], make([]byte, 16)) }),
		"end":         append(bytes.Clone(env), 1),
		"wrapped key": env[:100],
	} {
		_, err := ParseMasterKeyEnvelope(b)
		wantErr(t, err, coffer.ErrCorrupt, field)
	}
	_, err = ParseMasterKeyEnvelope(bad(func(b []byte) { copy(b, renv[:5]) }))
	wantErr(t, err, coffer.ErrCorrupt, "non-zero in a recovery envelope")

	for _, f := range []func(){
		func() { SealMasterKey(mk, PurposeRecovery, acct, kdf, rec.Wrap) },
		func() { SealMasterKey(mk, 9, acct, kdf, rec.Wrap) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("misuse did not panic")
				}
			}()
			f()
		}()
	}
}

func TestLoginMessage(t *testing.T) {
	acct := coffer.AccountID(id16(0xac))
	var ch [32]byte
	ch[0] = 9
	m := LoginMessage(acct, "alice", ch, ProofLogin)
	want := append([]byte("coffer/v1 login proof\x00\x01"), acct[:]...)
	want = append(want, 0, 5, 'a', 'l', 'i', 'c', 'e')
	want = append(want, ch[:]...)
	if !bytes.Equal(m, want) {
		t.Fatalf("LoginMessage = %x\nwant %x", m, want)
	}
	if bytes.Equal(m, LoginMessage(acct, "alice", ch, ProofRecover)) ||
		bytes.Equal(m, LoginMessage(acct, "alicf", ch, ProofLogin)) {
		t.Fatal("purpose or username not bound")
	}
	k := DerivePasswordKeys([]byte("pw"), weakKDF())
	if !ed25519.Verify(k.Login.Public().(ed25519.PublicKey), m, ed25519.Sign(k.Login, m)) {
		t.Fatal("login signature")
	}
}

func TestValidateUsername(t *testing.T) {
	for _, ok := range []string{"a", "alice", "0day", "a.b_c-d", string(bytes.Repeat([]byte("z"), 64))} {
		if err := ValidateUsername(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "-a", "_a", "Alice", "al ice", "al/ice", "é", string(bytes.Repeat([]byte("z"), 65)), "a\x00"} {
		wantErr(t, ValidateUsername(bad), coffer.ErrInvalid, "username")
	}
}
