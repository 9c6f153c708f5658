package format

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"coffer"
)

// Member states in a roster.
const (
	MemberActive  uint8 = 0
	MemberRemoved uint8 = 1
)

// Roster layout.
const (
	rosterHeaderLen = 4 + 16 + 16 + 8 + 4 + 2 // through n
	rosterMemberLen = 16 + 1 + 1 + 8 + 32 + 32
	// MaxRosterMembers is the largest member count a roster may list.
	MaxRosterMembers = 10000
)

// Member is one account in a shared tree's roster. Members are never the owner and, once
// listed, stay listed (a removed member keeps its entry so that what it wrote stays verifiable).
type Member struct {
	Account coffer.AccountID
	Role    uint8 // ShareRead or ShareWrite
	State   uint8 // MemberActive or MemberRemoved
	// Until is, for a removed member, the last head version it could author; 0 for an active one.
	Until          uint64
	Signing        [32]byte // the member's identity (Ed25519) public key
	KEMFingerprint [32]byte // SHA-256 of the member's KEM public key (as in invites)
}

// Roster is the owner-signed membership of a shared tree (doc/FORMAT.md §12.4):
//
//	"CFM1" | tree[16] | owner[16] | generation u64 | epoch u32 | n u16 | n × member |
//	owner signing pub[32] | sig[64]
//	member = account[16] | role u8 | state u8 | until u64 | signing pub[32] | KEM fingerprint[32]
//
// It is cleartext so that the server can enforce it; the signature makes it tamper-evident.
type Roster struct {
	Tree       coffer.TreeID
	Owner      coffer.AccountID
	Generation uint64 // >= 1, +1 on every change
	Epoch      uint32 // >= 1, the tree-key generation; +1 on every key rotation
	Members    []Member
	OwnerKey   [32]byte // the owner's identity (Ed25519) public key
	Sig        [64]byte
}

func (r *Roster) object() string {
	return fmt.Sprintf("roster %s g%d", short(r.Tree[:]), r.Generation)
}

func (r *Roster) signedPart() []byte {
	b := make([]byte, 0, rosterHeaderLen+rosterMemberLen*len(r.Members)+32+sigSize)
	b = append(b, "CFM1"...)
	b = append(b, r.Tree[:]...)
	b = append(b, r.Owner[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Generation)
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Members)))
	for _, m := range r.Members {
		b = append(b, m.Account[:]...)
		b = append(b, m.Role, m.State)
		b = binary.BigEndian.AppendUint64(b, m.Until)
		b = append(b, m.Signing[:]...)
		b = append(b, m.KEMFingerprint[:]...)
	}
	return append(b, r.OwnerKey[:]...)
}

// Marshal returns the roster's bytes. It does not validate; ParseRoster(Marshal()) fails for an
// invalid roster.
func (r *Roster) Marshal() []byte { return append(r.signedPart(), r.Sig[:]...) }

// check enforces the structural rules shared by parsing and signing.
func (r *Roster) check() error {
	const obj = "roster"
	switch {
	case r.Generation == 0:
		return corruptErr(obj, "generation", "zero")
	case r.Epoch == 0:
		return corruptErr(obj, "epoch", "zero")
	case len(r.Members) > MaxRosterMembers:
		return corruptErr(obj, "members", fmt.Sprintf("%d, maximum %d", len(r.Members), MaxRosterMembers))
	}
	for i, m := range r.Members {
		switch {
		case m.Account == r.Owner:
			return corruptErr(obj, "members", fmt.Sprintf("member %d is the owner", i))
		case m.Role != ShareRead && m.Role != ShareWrite:
			return corruptErr(obj, "members", fmt.Sprintf("member %d: unknown role %d", i, m.Role))
		case m.State != MemberActive && m.State != MemberRemoved:
			return corruptErr(obj, "members", fmt.Sprintf("member %d: unknown state %d", i, m.State))
		case m.State == MemberActive && m.Until != 0:
			return corruptErr(obj, "members", fmt.Sprintf("member %d: active with non-zero until", i))
		case i > 0 && bytes.Compare(r.Members[i-1].Account[:], m.Account[:]) >= 0:
			return corruptErr(obj, "members", "not sorted by account or duplicate account")
		}
	}
	return nil
}

// Sign checks the roster's structure, sets OwnerKey from signer and signs it. A structural
// error wraps coffer.ErrInvalid. The caller keeps Members sorted by account (SortMembers).
func (r *Roster) Sign(signer ed25519.PrivateKey) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("format: Roster.Sign: %v: %w", err, coffer.ErrInvalid)
	}
	copy(r.OwnerKey[:], signer.Public().(ed25519.PublicKey))
	copy(r.Sig[:], ed25519.Sign(signer, domain("coffer/v1 roster", r.signedPart())))
	return nil
}

// SortMembers sorts Members by account (the canonical order).
func (r *Roster) SortMembers() {
	ms := r.Members
	for i := 1; i < len(ms); i++ { // insertion sort: rosters are small and usually sorted
		for j := i; j > 0 && bytes.Compare(ms[j-1].Account[:], ms[j].Account[:]) > 0; j-- {
			ms[j-1], ms[j] = ms[j], ms[j-1]
		}
	}
}

// ParseRoster parses a roster, checks its rules (generation and epoch >= 1, at most
// MaxRosterMembers members sorted by account and unique, none the owner, known roles and states,
// until 0 for active members) and verifies the signature against the embedded owner key
// (ErrAuth). The caller still checks OwnerKey is the owner's trusted key (CheckOwner).
func ParseRoster(b []byte) (*Roster, error) {
	rd := reader{b: b, obj: "roster"}
	r := &Roster{}
	rd.magic("CFM1")
	rd.copyTo(r.Tree[:], "tree")
	rd.copyTo(r.Owner[:], "owner")
	r.Generation = rd.u64("generation")
	r.Epoch = rd.u32("epoch")
	n := int(rd.u16("member count"))
	if rd.err == nil && n > MaxRosterMembers {
		rd.fail("member count", fmt.Sprintf("%d, maximum %d", n, MaxRosterMembers))
	}
	if rd.err == nil && len(rd.b) < n*rosterMemberLen {
		rd.fail("members", fmt.Sprintf("truncated (need %d bytes, have %d)", n*rosterMemberLen, len(rd.b)))
	}
	if rd.err == nil && n > 0 {
		r.Members = make([]Member, n)
	}
	for i := range r.Members {
		m := &r.Members[i]
		rd.copyTo(m.Account[:], "member account")
		m.Role = rd.u8("member role")
		m.State = rd.u8("member state")
		m.Until = rd.u64("member until")
		rd.copyTo(m.Signing[:], "member signing key")
		rd.copyTo(m.KEMFingerprint[:], "member kem fingerprint")
	}
	rd.copyTo(r.OwnerKey[:], "owner key")
	rd.copyTo(r.Sig[:], "signature")
	if err := rd.end(); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	if !ed25519.Verify(r.OwnerKey[:], domain("coffer/v1 roster", r.signedPart()), r.Sig[:]) {
		return nil, authErr(r.object())
	}
	return r, nil
}

// CheckOwner checks that the roster was signed by ownerKey (the owner's trusted identity key:
// one's own, or the owner's pinned contact key). A mismatch is ErrAuth.
func (r *Roster) CheckOwner(owner coffer.AccountID, ownerKey []byte) error {
	if r.Owner != owner || !bytes.Equal(r.OwnerKey[:], ownerKey) {
		return authErr(r.object())
	}
	return nil
}

// Member returns the roster entry of acct, or nil.
func (r *Roster) Member(acct coffer.AccountID) *Member {
	lo, hi := 0, len(r.Members)
	for lo < hi {
		mid := (lo + hi) / 2
		switch c := bytes.Compare(r.Members[mid].Account[:], acct[:]); {
		case c == 0:
			return &r.Members[mid]
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return nil
}

// memberByKey returns the entry whose signing key is key, or nil.
func (r *Roster) memberByKey(key []byte) *Member {
	for i := range r.Members {
		if bytes.Equal(r.Members[i].Signing[:], key) {
			return &r.Members[i]
		}
	}
	return nil
}

// MayWriteHead reports whether key may sign head version of the tree: the owner key; an active
// member with the write role; or a removed member whose role was write, for version <= Until.
func (r *Roster) MayWriteHead(key []byte, version uint64) bool {
	if bytes.Equal(key, r.OwnerKey[:]) {
		return true
	}
	m := r.memberByKey(key)
	if m == nil || m.Role != ShareWrite {
		return false
	}
	return m.State == MemberActive || version <= m.Until
}

// MayAuthor reports whether key may be the author of a live record of the tree: the owner key,
// or a member (active or removed) with the write role. Readers never author anything.
func (r *Roster) MayAuthor(key []byte) bool {
	if bytes.Equal(key, r.OwnerKey[:]) {
		return true
	}
	m := r.memberByKey(key)
	return m != nil && m.Role == ShareWrite
}

// CheckSuccessor checks the rules between a stored roster prev and its replacement next, given
// the tree's current head version (0 before the first commit). Both are parsed (signatures
// verified). Rules: same tree, owner and owner key; generation prev+1; every member of prev is
// still listed, keeps its signing and KEM keys, and does not go from write to read; a member
// that stays removed keeps its until (a removed member may be made active again: re-invited);
// a newly removed member has until =
// headVersion; an epoch either stays or grows by one, and grows by one whenever a member is
// newly removed. Failures wrap coffer.ErrInvalid and say which rule failed (all inputs are
// public).
func CheckRosterSuccessor(prev, next *Roster, headVersion uint64) error {
	fail := func(format string, args ...any) error {
		return invalidf("%s: "+format, append([]any{next.object()}, args...)...)
	}
	switch {
	case next.Tree != prev.Tree || next.Owner != prev.Owner:
		return fail("names another tree or owner")
	case next.OwnerKey != prev.OwnerKey:
		return fail("signed with another owner key")
	case next.Generation != prev.Generation+1:
		return fail("generation %d does not follow %d", next.Generation, prev.Generation)
	case next.Epoch != prev.Epoch && next.Epoch != prev.Epoch+1:
		return fail("epoch %d does not follow %d", next.Epoch, prev.Epoch)
	}
	removed := false
	for _, pm := range prev.Members {
		nm := next.Member(pm.Account)
		switch {
		case nm == nil:
			return fail("member %s dropped (members are removed, never dropped)", pm.Account)
		case nm.Signing != pm.Signing || nm.KEMFingerprint != pm.KEMFingerprint:
			return fail("member %s: keys changed", pm.Account)
		case pm.Role == ShareWrite && nm.Role == ShareRead:
			return fail("member %s: write role lowered to read (remove the member instead)", pm.Account)
		case pm.State == MemberRemoved && nm.State == MemberRemoved && nm.Until != pm.Until:
			return fail("member %s: until of a removed member changed", pm.Account)
		case pm.State == MemberActive && nm.State == MemberRemoved:
			if nm.Until != headVersion {
				return fail("member %s: until %d, want the current head version %d", pm.Account, nm.Until, headVersion)
			}
			removed = true
		}
	}
	for _, nm := range next.Members {
		if prev.Member(nm.Account) == nil && nm.State != MemberActive {
			return fail("new member %s is not active", nm.Account)
		}
	}
	if removed && next.Epoch != prev.Epoch+1 {
		return fail("a member was removed but the epoch stayed %d (the tree key must rotate)", next.Epoch)
	}
	return nil
}
