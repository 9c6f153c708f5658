package format

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"coffer"
)

// Body is the encrypted part of a folder or file record.
type Body struct {
	Name        string
	MTime       int64 // Unix nanoseconds
	Mode        uint32
	Role        Role
	TrashOrigin coffer.NodeID // the folder a trashed node came from; zero when not in the trash
	Content     *Content      // files only
	// Origin is the upload-only link a file arrived through (an anonymous upload imported by the
	// owner); zero for everything else.
	Origin LinkID
	// Mount, on a folder, names the shared tree whose root folder this folder shows; such a
	// folder has no children in its own tree. Zero for an ordinary node.
	Mount coffer.TreeID
	// PreviousKey is the node's previous node key when this version's key differs from the
	// previous version's (key rotation), so holders of the new key can read older versions.
	PreviousKey *NodeKey
}

// Content describes one version of a file's content.
type Content struct {
	Key        ContentKey
	Commitment [32]byte // must equal Key.Commitment()
	Size       uint64
	ChunkSize  uint32
	Hash       [32]byte // SHA-256 of the plaintext
	Chunks     []ChunkRef
}

// ChunkRef locates one encrypted chunk inside a blob.
type ChunkRef struct {
	Blob   coffer.BlobID
	Offset uint64
	Length uint32 // ciphertext length: plaintext length + 16
}

// Role marks the special top-level folders of an account tree.
type Role uint8

// Roles. Only a folder whose parent is zero may have a role other than RoleNone.
const (
	RoleNone  Role = 0 // an ordinary node
	RoleRoot  Role = 1 // the account's drive root
	RoleTrash Role = 2 // the account's trash folder
)

// Body TLV tags.
const (
	bodyTagName    = 1
	bodyTagMTime   = 2
	bodyTagMode    = 3
	bodyTagRole    = 4
	bodyTagTrash   = 5
	bodyTagContent = 6
	bodyTagMount   = 7
	bodyTagPrevKey = 8
	bodyTagOrigin  = 9
	// bodyTagMax is the highest tag this version knows.
	bodyTagMax = bodyTagOrigin
)

const (
	contentFixedLen = 32 + 32 + 8 + 4 + 32 + 4
	chunkRefLen     = 32 + 8 + 4
)

// ValidateName rejects names that are empty, longer than 255 bytes, not UTF-8, ".", "..", or
// contain '/' or NUL; the error wraps coffer.ErrInvalid. Names the host OS cannot represent
// (Windows-reserved names, for instance) are the downloader's business, not the format's. The
// error does not quote the name (names are confidential); callers add context if they want.
func ValidateName(name string) error {
	switch {
	case len(name) == 0:
		return fmt.Errorf("format: name: empty: %w", coffer.ErrInvalid)
	case len(name) > 255:
		return fmt.Errorf("format: name: %d bytes, maximum 255: %w", len(name), coffer.ErrInvalid)
	case !utf8.ValidString(name):
		return fmt.Errorf("format: name: not valid UTF-8: %w", coffer.ErrInvalid)
	case name == "." || name == "..":
		return fmt.Errorf("format: name: %q and %q are reserved: %w", ".", "..", coffer.ErrInvalid)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("format: name: contains '/' or NUL: %w", coffer.ErrInvalid)
	}
	return nil
}

// validate checks the rules of a content description (structure and key commitment).
func (c *Content) validate(object string) error {
	if !ValidChunkSize(c.ChunkSize) {
		return corruptErr(object, "content chunk size", fmt.Sprintf("%d is not a power of two in [64 KiB, 16 MiB]", c.ChunkSize))
	}
	n := ChunkCount(c.Size, c.ChunkSize)
	if uint64(len(c.Chunks)) != n {
		return corruptErr(object, "content chunks", fmt.Sprintf("%d chunks, size %d needs %d", len(c.Chunks), c.Size, n))
	}
	for i, ch := range c.Chunks {
		if want := ChunkPlainLen(c.Size, c.ChunkSize, uint64(i)) + tagSize; ch.Length != want {
			return corruptErr(object, "content chunks", fmt.Sprintf("chunk %d length %d, want %d", i, ch.Length, want))
		}
	}
	if c.Commitment != c.Key.Commitment() {
		return authErr(object)
	}
	return nil
}

// checkKind checks the body rules that depend on the record: files have content, folders do
// not; a role only on a top-level folder.
func (b *Body) checkKind(kind Kind, parent coffer.NodeID, object string) error {
	switch {
	case kind == KindFile && b.Content == nil:
		return corruptErr(object, "content", "missing in a file")
	case kind == KindFolder && b.Content != nil:
		return corruptErr(object, "content", "present in a folder")
	case b.Role != RoleNone && (kind != KindFolder || !parent.IsZero()):
		return corruptErr(object, "role", "only a top-level folder has a role")
	case b.Mount != (coffer.TreeID{}) && kind != KindFolder:
		return corruptErr(object, "mount", "only a folder is a mount")
	case b.Mount != (coffer.TreeID{}) && b.Role != RoleNone:
		return corruptErr(object, "mount", "a root or trash folder is not a mount")
	}
	return nil
}

// marshalBody returns the body TLV plaintext. b must be valid.
func marshalBody(b *Body) []byte {
	var scratch [8]byte
	out := appendTLV(nil, bodyTagName, []byte(b.Name))
	out = appendTLV(out, bodyTagMTime, binary.BigEndian.AppendUint64(scratch[:0], uint64(b.MTime)))
	out = appendTLV(out, bodyTagMode, binary.BigEndian.AppendUint32(scratch[:0], b.Mode))
	if b.Role != RoleNone {
		out = appendTLV(out, bodyTagRole, []byte{uint8(b.Role)})
	}
	if !b.TrashOrigin.IsZero() {
		out = appendTLV(out, bodyTagTrash, b.TrashOrigin[:])
	}
	if c := b.Content; c != nil {
		out = appendTLV(out, bodyTagContent, marshalContent(c))
	}
	if b.Mount != (coffer.TreeID{}) {
		out = appendTLV(out, bodyTagMount, b.Mount[:])
	}
	if b.PreviousKey != nil {
		out = appendTLV(out, bodyTagPrevKey, b.PreviousKey[:])
	}
	if b.Origin != (LinkID{}) {
		out = appendTLV(out, bodyTagOrigin, b.Origin[:])
	}
	return out
}

// marshalContent returns the content TLV value (§7).
func marshalContent(c *Content) []byte {
	v := make([]byte, 0, contentFixedLen+chunkRefLen*len(c.Chunks))
	v = append(v, c.Key[:]...)
	v = append(v, c.Commitment[:]...)
	v = binary.BigEndian.AppendUint64(v, c.Size)
	v = binary.BigEndian.AppendUint32(v, c.ChunkSize)
	v = append(v, c.Hash[:]...)
	v = binary.BigEndian.AppendUint32(v, uint32(len(c.Chunks)))
	for _, ch := range c.Chunks {
		v = append(v, ch.Blob[:]...)
		v = binary.BigEndian.AppendUint64(v, ch.Offset)
		v = binary.BigEndian.AppendUint32(v, ch.Length)
	}
	return v
}

// validateBody checks everything parseBody checks, for sealing.
func validateBody(b *Body, object string) error {
	if err := ValidateName(b.Name); err != nil {
		return err
	}
	if b.Role > RoleTrash {
		return invalidf("%s: unknown role %d", object, b.Role)
	}
	if b.Content != nil {
		if len(b.Content.Chunks) > 0xffffffff {
			return invalidf("%s: too many chunks", object)
		}
		if err := b.Content.validate(object); err != nil {
			return err
		}
	}
	return nil
}

// parseBody parses a body TLV plaintext and checks its intrinsic rules (name, role value,
// content structure and commitment). Kind-dependent rules are Body.checkKind.
func parseBody(pt []byte, object string) (*Body, error) {
	items, err := parseTLV(pt, object, bodyTagMax)
	if err != nil {
		return nil, err
	}
	b := &Body{}
	var seen [bodyTagMax + 1]bool
	for _, it := range items {
		seen[it.tag] = true
		switch it.tag {
		case bodyTagName:
			b.Name = string(it.value)
			if err := ValidateName(b.Name); err != nil {
				return nil, corruptErr(object, "name", "invalid")
			}
		case bodyTagMTime:
			if err := it.wantLen(object, 8, "mtime"); err != nil {
				return nil, err
			}
			b.MTime = int64(binary.BigEndian.Uint64(it.value))
		case bodyTagMode:
			if err := it.wantLen(object, 4, "mode"); err != nil {
				return nil, err
			}
			b.Mode = binary.BigEndian.Uint32(it.value)
		case bodyTagRole:
			if err := it.wantLen(object, 1, "role"); err != nil {
				return nil, err
			}
			b.Role = Role(it.value[0])
			if b.Role != RoleRoot && b.Role != RoleTrash {
				return nil, corruptErr(object, "role", fmt.Sprintf("unknown role %d", b.Role))
			}
		case bodyTagTrash:
			if err := it.wantLen(object, 16, "trash origin"); err != nil {
				return nil, err
			}
			b.TrashOrigin = coffer.NodeID(it.value)
			if b.TrashOrigin.IsZero() {
				return nil, corruptErr(object, "trash origin", "zero (omit the tag instead)")
			}
		case bodyTagContent:
			c, err := parseContent(it.value, object)
			if err != nil {
				return nil, err
			}
			b.Content = c
		case bodyTagMount:
			if err := it.wantLen(object, 16, "mount"); err != nil {
				return nil, err
			}
			b.Mount = coffer.TreeID(it.value)
			if b.Mount == (coffer.TreeID{}) {
				return nil, corruptErr(object, "mount", "zero (omit the tag instead)")
			}
		case bodyTagPrevKey:
			if err := it.wantLen(object, 32, "previous key"); err != nil {
				return nil, err
			}
			k := NodeKey(it.value)
			b.PreviousKey = &k
		case bodyTagOrigin:
			if err := it.wantLen(object, 16, "origin"); err != nil {
				return nil, err
			}
			b.Origin = LinkID(it.value)
			if b.Origin == (LinkID{}) {
				return nil, corruptErr(object, "origin", "zero (omit the tag instead)")
			}
		default:
			return nil, corruptErr(object, fmt.Sprintf("tlv tag %d", it.tag), "unknown tag")
		}
	}
	for _, tag := range []int{bodyTagName, bodyTagMTime, bodyTagMode} {
		if !seen[tag] {
			return nil, corruptErr(object, fmt.Sprintf("tlv tag %d", tag), "required tag missing")
		}
	}
	return b, nil
}

func parseContent(v []byte, object string) (*Content, error) {
	r := reader{b: v, obj: object}
	c := &Content{}
	r.copyTo(c.Key[:], "content key")
	r.copyTo(c.Commitment[:], "content commitment")
	c.Size = r.u64("content size")
	c.ChunkSize = r.u32("content chunk size")
	r.copyTo(c.Hash[:], "content hash")
	count := r.u32("content chunk count")
	if r.err == nil && uint64(len(r.b)) != uint64(count)*chunkRefLen {
		return nil, corruptErr(object, "content chunks", fmt.Sprintf("%d bytes for %d chunks", len(r.b), count))
	}
	if r.err != nil {
		return nil, r.err
	}
	if count > 0 {
		c.Chunks = make([]ChunkRef, count)
	}
	for i := range c.Chunks {
		r.copyTo(c.Chunks[i].Blob[:], "chunk blob")
		c.Chunks[i].Offset = r.u64("chunk offset")
		c.Chunks[i].Length = r.u32("chunk length")
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if err := c.validate(object); err != nil {
		return nil, err
	}
	return c, nil
}
