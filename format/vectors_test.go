package format

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"coffer"
)

func loadVectors(t testing.TB) []*Vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var out []*Vector
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p)
		v, err := ParseVector(name[:len(name)-4], b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.Encode(), b) {
			t.Fatalf("%s: not in canonical vector form", p)
		}
		out = append(out, v)
	}
	return out
}

// TestVectorsUpToDate fails if running the generator would change the committed files.
func TestVectorsUpToDate(t *testing.T) {
	gen, err := Vectors(loadVectors(t)...)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*Vector{}
	for _, v := range loadVectors(t) {
		files[v.Name] = v
	}
	for _, v := range gen {
		f, ok := files[v.Name]
		if !ok {
			t.Errorf("%s: generated but not committed (run go run ./format/internal/vectorgen)", v.Name)
			continue
		}
		if !bytes.Equal(f.Encode(), v.Encode()) {
			t.Errorf("%s: generator output differs from the committed file", v.Name)
		}
		delete(files, v.Name)
	}
	for name := range files {
		t.Errorf("%s: committed but no longer generated", name)
	}
}

func TestVectors(t *testing.T) {
	counts := map[string]int{}
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			err := checkVector(v)
			switch want := v.Get("expect"); want {
			case ExpectSuccess:
				if err != nil {
					t.Fatalf("want success: %v", err)
				}
			case ExpectAuth:
				if !errors.Is(err, coffer.ErrAuth) {
					t.Fatalf("want auth failure, got %v", err)
				}
			case ExpectParse:
				if !errors.Is(err, coffer.ErrCorrupt) && !errors.Is(err, coffer.ErrInvalid) {
					t.Fatalf("want parse failure, got %v", err)
				}
			default:
				t.Fatalf("unknown expect %q", want)
			}
			counts[v.Get("expect")]++
		})
	}
	if counts[ExpectSuccess] < 10 || counts[ExpectAuth] < 10 || counts[ExpectParse] < 10 {
		t.Fatalf("too few vectors of some kind: %v", counts)
	}
}

func hexField(v *Vector, key string) []byte {
	b, err := hex.DecodeString(v.Get(key))
	if err != nil {
		panic(fmt.Sprintf("vector %s: field %s: %v", v.Name, key, err))
	}
	return b
}

func key32(v *Vector, key string) [32]byte {
	b := hexField(v, key)
	if len(b) != 32 {
		panic(fmt.Sprintf("vector %s: field %s: %d bytes", v.Name, key, len(b)))
	}
	return [32]byte(b)
}

// expectEq returns a non-sentinel error (fails every expectation) if a computed value differs.
func expectEq(v *Vector, key string, got []byte) error {
	if want := v.Get(key); want != "" && want != hex.EncodeToString(got) {
		return fmt.Errorf("vector %s: %s = %x, want %s", v.Name, key, got, want)
	}
	return nil
}

func expectStr(v *Vector, key, got string) error {
	if want := v.Get(key); want != "" && want != got {
		return fmt.Errorf("vector %s: %s = %q, want %q", v.Name, key, got, want)
	}
	return nil
}

func reencode(v *Vector, got []byte) error {
	if !bytes.Equal(got, v.Data) {
		return fmt.Errorf("vector %s: re-encoding differs", v.Name)
	}
	return nil
}

// checkVector performs what the vector's header lines imply; nil means success.
func checkVector(v *Vector) error {
	switch v.Get("object") {
	case "envelope":
		return checkEnvelopeVector(v)
	case "recovery key":
		rk, err := ParseRecoveryKey(string(v.Data))
		if err != nil {
			return err
		}
		mk := MasterKey(key32(v, "master key"))
		return errors.Join(expectEq(v, "recovery key", rk[:]), expectEq(v, "recovery key", func() []byte { r := mk.RecoveryKey(); return r[:] }()), reencode(v, []byte(rk.String())))
	case "bundle":
		b, err := OpenBundle(v.Data, MasterKey(key32(v, "master key")), coffer.AccountID(hexField(v, "account")))
		if err != nil {
			return err
		}
		return errors.Join(expectEq(v, "signing seed", b.SigningSeed[:]), expectEq(v, "kem seed", b.KEMSeed[:]),
			expectEq(v, "tree", b.Tree[:]), expectEq(v, "tree key", b.TreeKey[:]), expectStr(v, "shares", strconv.Itoa(len(b.Shares))),
			expectEq(v, "plaintext sha256", sha(b.marshalPlain())))
	case "public keys":
		p, err := ParsePublicKeys(v.Data)
		if err != nil {
			return err
		}
		return errors.Join(expectStr(v, "username", p.Username), expectEq(v, "account", p.Account[:]), expectEq(v, "signing public", p.Signing),
			expectEq(v, "kem public sha256", sha(p.KEM)), expectStr(v, "fingerprint", p.Fingerprint()), reencode(v, p.Marshal()))
	case "record":
		return checkRecordVector(v)
	case "head":
		h, err := ParseHead(v.Data)
		if err != nil {
			return err
		}
		if err := h.VerifySignature(); err != nil {
			return err
		}
		if v.Get("previous") != "" {
			prev, err := ParseHead(hexField(v, "previous"))
			if err != nil {
				return err
			}
			if err := CheckSuccessor(prev, h); err != nil {
				return err
			}
		}
		hh := h.Hash()
		return errors.Join(expectEq(v, "hash", hh[:]), expectEq(v, "writer", h.Writer[:]), reencode(v, h.Marshal()))
	case "chunk":
		ck := ContentKey(key32(v, "content key"))
		idx, _ := strconv.ParseUint(v.Get("index"), 10, 64)
		pt, err := ck.Cipher().Open(nil, v.Data, idx, v.Get("final") == "true")
		if err != nil {
			return err
		}
		return errors.Join(expectEq(v, "plaintext", pt), expectEq(v, "commitment", sha256Commit(ck)),
			reencode(v, ck.Cipher().Seal(nil, pt, idx, v.Get("final") == "true")))
	case "blob name":
		var lengths []uint32
		for _, f := range strings.Split(v.Get("lengths"), ",") {
			l, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				panic(fmt.Sprintf("vector %s: lengths: %v", v.Name, err))
			}
			lengths = append(lengths, uint32(l))
		}
		name, err := BlobName(v.Data, lengths)
		if err != nil {
			return err
		}
		return expectEq(v, "name", name[:])
	case "state":
		return checkStateVector(v)
	case "link":
		return checkLinkVector(v)
	case "drop":
		return checkDropVector(v)
	case "roster":
		r, err := ParseRoster(v.Data)
		if err != nil {
			return err
		}
		if err := r.CheckOwner(r.Owner, hexField(v, "owner public")); err != nil {
			return err
		}
		return errors.Join(expectStr(v, "generation", strconv.FormatUint(r.Generation, 10)), expectStr(v, "epoch", strconv.FormatUint(uint64(r.Epoch), 10)),
			expectStr(v, "members", strconv.Itoa(len(r.Members))), reencode(v, r.Marshal()))
	case "invite":
		inv, err := ParseInvite(v.Data)
		if err != nil {
			return err
		}
		sender, err := ParsePublicKeys(hexField(v, "sender public keys"))
		if err != nil {
			return err
		}
		b := &Bundle{Account: coffer.AccountID(hexField(v, "recipient account")), KEMSeed: key32(v, "recipient kem seed")}
		tk, err := inv.Open(b, sender)
		if err != nil {
			return err
		}
		return errors.Join(expectEq(v, "tree key", tk[:]), reencode(v, inv.Marshal()))
	}
	return fmt.Errorf("vector %s: unknown object %q", v.Name, v.Get("object"))
}

func checkEnvelopeVector(v *Vector) error {
	e, err := ParseMasterKeyEnvelope(v.Data)
	if err != nil {
		return err
	}
	var keys *LoginKeys
	if s := v.Get("recovery key"); s != "" {
		rk, err := ParseRecoveryKey(s)
		if err != nil {
			return err
		}
		keys = DeriveRecoveryKeys(rk)
	} else {
		if e.Purpose != PurposePassword {
			return authErr("vector: password for a recovery envelope")
		}
		keys = DerivePasswordKeys([]byte(v.Get("password")), e.KDF)
	}
	purpose, _ := strconv.Atoi(v.Get("purpose"))
	mk, err := OpenMasterKey(v.Data, uint8(purpose), coffer.AccountID(hexField(v, "account")), keys.Wrap)
	if err != nil {
		return err
	}
	return errors.Join(expectEq(v, "login public", keys.Login.Public().(ed25519.PublicKey)), expectEq(v, "wrap", keys.Wrap[:]),
		expectEq(v, "master key", mk[:]), reencode(v, e.Marshal()))
}

func checkRecordVector(v *Vector) error {
	r, err := ParseRecord(v.Data)
	if err != nil {
		return err
	}
	if err := r.VerifySignature(); err != nil {
		return err
	}
	rh := r.Hash()
	if err := errors.Join(expectEq(v, "hash", rh[:]), reencode(v, r.Marshal())); err != nil {
		return err
	}
	if r.Kind == KindTombstone {
		return nil
	}
	var parent WrapKey
	switch {
	case v.Get("tree key") != "":
		parent = TreeKey(key32(v, "tree key")).WrapKey()
	default:
		parent = NodeKey(key32(v, "parent node key")).WrapKey()
	}
	nk, err := r.OpenKey(parent)
	if err != nil {
		return err
	}
	b, err := r.OpenBody(nk)
	if err != nil {
		return err
	}
	var ck []byte
	if b.Content != nil {
		ck = b.Content.Key[:]
		if err := expectStr(v, "size", strconv.FormatUint(b.Content.Size, 10)); err != nil {
			return err
		}
	}
	var mount, prevKey []byte
	if b.Mount != (coffer.TreeID{}) {
		mount = b.Mount[:]
	}
	if b.PreviousKey != nil {
		prevKey = b.PreviousKey[:]
	}
	return errors.Join(expectEq(v, "node key", nk[:]), expectStr(v, "name", b.Name), expectEq(v, "content key", ck),
		expectEq(v, "mount", mount), expectEq(v, "previous key", prevKey), expectEq(v, "body sha256", sha(marshalBody(b))))
}

func checkStateVector(v *Vector) error {
	if len(v.Data)%48 != 0 {
		return corruptErr("vector", "data", "not a list of entries")
	}
	var entries []Entry
	for d := v.Data; len(d) > 0; d = d[48:] {
		entries = append(entries, Entry{Node: coffer.NodeID(d[:16]), Hash: [32]byte(d[16:48])})
	}
	folder := coffer.NodeID(hexField(v, "folder"))
	root := FolderRoot(folder, entries)
	bh := BucketHash(BucketOf(folder), []FolderSummary{{Folder: folder, Count: uint64(len(entries)), Root: root}})
	buckets := EmptyBuckets()
	empty := StateRoot(buckets)
	buckets[BucketOf(folder)] = bh
	sr, ops := StateRoot(buckets), OpsHash(entries)
	return errors.Join(expectEq(v, "folder root", root[:]), expectEq(v, "bucket hash", bh[:]), expectEq(v, "state root", sr[:]),
		expectEq(v, "ops hash", ops[:]), expectEq(v, "empty state root", empty[:]))
}

func checkLinkVector(v *Vector) error {
	l, err := ParseLink(v.Data)
	if err != nil {
		return err
	}
	if err := l.VerifySignature(); err != nil {
		return err
	}
	_, id, s, err := ParseLinkURL(v.Get("url"))
	if err != nil {
		return err
	}
	if id != l.ID {
		return authErr("vector: url names another link")
	}
	var kdf KDFParams
	if l.Flags&LinkFlagPassword != 0 {
		kdf = l.KDF
	}
	keys := DeriveLinkKeys(s, []byte(v.Get("password")), kdf)
	if l.UploadOnly() {
		uk, err := l.OpenUpload(keys)
		if err != nil {
			return err
		}
		lk := UploadLinkKey(&Bundle{KEMSeed: key32(v, "owner kem seed")}, l.ID)
		return errors.Join(expectEq(v, "link key", uk.LinkKey[:]), expectEq(v, "link key", lk[:]),
			expectEq(v, "owner fingerprint", uk.OwnerFingerprint[:]),
			expectEq(v, "auth public", keys.Auth.Public().(ed25519.PublicKey)), reencode(v, l.Marshal()))
	}
	nk, err := l.OpenNodeKey(keys)
	if err != nil {
		return err
	}
	return errors.Join(expectEq(v, "node key", nk[:]), expectEq(v, "auth public", keys.Auth.Public().(ed25519.PublicKey)), reencode(v, l.Marshal()))
}

func checkDropVector(v *Vector) error {
	d, err := ParseDrop(v.Data)
	if err != nil {
		return err
	}
	b := &Bundle{Account: coffer.AccountID(hexField(v, "owner account")), KEMSeed: key32(v, "owner kem seed")}
	f, err := d.Open(b)
	if err != nil {
		return err
	}
	var ck []byte
	size := ""
	if f.Content != nil {
		ck, size = f.Content.Key[:], strconv.FormatUint(f.Content.Size, 10)
	}
	nid := DropNodeID(d.Link, d.ID)
	return errors.Join(expectStr(v, "name", f.Name), expectStr(v, "path", strings.Join(f.Path, "/")),
		expectStr(v, "size", size), expectEq(v, "content key", ck), expectEq(v, "node", nid[:]), reencode(v, d.Marshal()))
}
