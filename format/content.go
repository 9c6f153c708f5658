package format

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"coffer"
)

// DefaultChunkSize is the plaintext chunk size of new file versions.
const DefaultChunkSize = 1 << 20

// Chunk size limits: a chunk size is a power of two in [MinChunkSize, MaxChunkSize].
const (
	MinChunkSize = 64 << 10
	MaxChunkSize = 16 << 20
)

// ContentKey is the fresh random key of one file version.
type ContentKey [32]byte

// NewContentKey returns a random content key.
func NewContentKey() ContentKey { return random32(rand.Reader) }

// Commitment is the key commitment stored in the record: HKDF(CK, "coffer/v1 key commitment").
func (ck ContentKey) Commitment() [32]byte { return derive(ck[:], "coffer/v1 key commitment") }

// ContentCipher seals and opens the chunks of one file version. Safe for concurrent use.
type ContentCipher struct {
	aead cipher.AEAD // AES-256-GCM under HKDF(CK, "coffer/v1 payload")
}

// Cipher derives the payload key.
func (ck ContentKey) Cipher() *ContentCipher {
	return &ContentCipher{aead: newGCM(derive(ck[:], "coffer/v1 payload"))}
}

// chunkNonce is index u64 || 0x00 0x00 0x00 || final (0x01 for the last chunk, else 0x00).
func chunkNonce(index uint64, final bool) (n [nonceSize]byte) {
	binary.BigEndian.PutUint64(n[:8], index)
	if final {
		n[11] = 1
	}
	return n
}

// Seal appends the ciphertext of chunk index (plaintext length + 16 bytes) to dst.
func (c *ContentCipher) Seal(dst, plain []byte, index uint64, final bool) []byte {
	n := chunkNonce(index, final)
	return c.aead.Seal(dst, n[:], plain, nil)
}

// Open appends the plaintext of chunk index to dst, or fails with coffer.ErrAuth.
func (c *ContentCipher) Open(dst, ct []byte, index uint64, final bool) ([]byte, error) {
	n := chunkNonce(index, final)
	out, err := c.aead.Open(dst, n[:], ct, nil)
	if err != nil {
		return nil, fmt.Errorf("format: chunk %d: %w", index, coffer.ErrAuth)
	}
	return out, nil
}

// ChunkCount is the number of chunks of a size-byte file: ceil(size / chunkSize); 0 for an
// empty file. chunkSize must be non-zero.
func ChunkCount(size uint64, chunkSize uint32) uint64 {
	cs := uint64(chunkSize)
	return size/cs + min(size%cs, 1)
}

// ChunkPlainLen is the plaintext length of chunk i of a size-byte file: chunkSize for every chunk
// but the last, which holds the rest. It is 0 for an index past the end.
func ChunkPlainLen(size uint64, chunkSize uint32, i uint64) uint32 {
	cs := uint64(chunkSize)
	n := ChunkCount(size, chunkSize)
	switch {
	case i >= n:
		return 0
	case i < n-1:
		return chunkSize
	default:
		return uint32(size - cs*(n-1))
	}
}

// ValidChunkSize reports whether cs is a power of two in [MinChunkSize, MaxChunkSize].
func ValidChunkSize(cs uint32) bool {
	return cs >= MinChunkSize && cs <= MaxChunkSize && cs&(cs-1) == 0
}

// BlobName returns the name a writer gives a blob that holds sealed chunks of the given lengths
// (plaintext length + 16 each), in order and nothing else (§8):
//
//	H("coffer/v1 blob" || \0 || n u32 || n × (length u32 || tag[16]))
//
// where tag is the last 16 bytes of each chunk. The name costs a hash of 20 bytes per chunk
// instead of one over the whole blob; it is unique because the tags are GCM tags under fresh
// content keys, and the same sealed chunks always get the same name (an interrupted upload
// resumes under it). Readers never rely on it: the chunks' AEAD is what they check. The lengths
// must each be at least 16 and add up to len(blob) (errors wrap coffer.ErrInvalid).
func BlobName(blob []byte, lengths []uint32) (coffer.BlobID, error) {
	n := len(lengths)
	if uint64(n) > 1<<32-1 {
		return coffer.BlobID{}, fmt.Errorf("format: blob name: %d chunks: %w", n, coffer.ErrInvalid)
	}
	buf := make([]byte, 0, len("coffer/v1 blob")+1+4+n*20)
	buf = append(buf, "coffer/v1 blob\x00"...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	off := 0
	for i, l := range lengths {
		if l < tagSize || uint64(off)+uint64(l) > uint64(len(blob)) {
			return coffer.BlobID{}, fmt.Errorf("format: blob name: chunk %d of %d bytes at offset %d does not fit a %d-byte blob: %w",
				i, l, off, len(blob), coffer.ErrInvalid)
		}
		off += int(l)
		buf = binary.BigEndian.AppendUint32(buf, l)
		buf = append(buf, blob[off-tagSize:off]...)
	}
	if off != len(blob) {
		return coffer.BlobID{}, fmt.Errorf("format: blob name: chunks of %d bytes in a %d-byte blob: %w", off, len(blob), coffer.ErrInvalid)
	}
	return coffer.BlobID(sha256.Sum256(buf)), nil
}
