// Package format implements Coffer's cryptographic format, as specified in doc/FORMAT.md.
//
// It is pure Go: no cgo, no OS calls, no network, no logging, no context. It builds for
// GOOS=js GOARCH=wasm. Parsers are strict (canonical encodings only; parse→marshal round-trips
// byte for byte) and every decryption, signature or commitment failure returns an error wrapping
// coffer.ErrAuth and nothing else that distinguishes the failed check.
//
// THIS FILE IS THE AGREED API SKELETON. The format helper replaces the panicking bodies with the
// real implementation (splitting into files by concept) without changing these signatures; other
// packages code against them.
package format

import (
	"crypto/ed25519"

	"coffer"
)

// Version is the format version this package reads and writes.
const Version = 1

// ---- password KDF (Argon2id) ----

// KDFParams are the Argon2id parameters and salt for one account's password.
type KDFParams struct {
	Time      uint32   // passes, t
	MemoryKiB uint32   // m, in KiB
	Threads   uint8    // p
	Salt      [16]byte // random, chosen by the client at sign-up and on password change
}

// DefaultKDF returns fresh production parameters (t=3, m=64 MiB, p=1) with a random salt.
func DefaultKDF() KDFParams { panic("unimplemented") }

// MinKDF returns the minimum a client accepts from a server (t>=3, m>=64 MiB, p>=1).
func MinKDF() KDFParams { panic("unimplemented") }

// Check returns an error naming the weak parameter if p is below min or above sane maxima.
func (p KDFParams) Check(min KDFParams) error { panic("unimplemented") }

// LoginKeys are what a password (or a recovery key) yields: a signing key that proves knowledge of
// it to the server, and a wrapping key for the master-key envelope. Neither is the other.
type LoginKeys struct {
	Login ed25519.PrivateKey
	Wrap  [32]byte
}

// DerivePasswordKeys runs Argon2id once and separates the output with HKDF labels.
func DerivePasswordKeys(password []byte, p KDFParams) *LoginKeys { panic("unimplemented") }

// MasterKey is an account's random root secret. It never leaves the client unwrapped.
type MasterKey [32]byte

// NewMasterKey returns a random master key.
func NewMasterKey() MasterKey { panic("unimplemented") }

// RecoveryKey is derived from the master key, so it can be printed at any time.
type RecoveryKey [32]byte

func (mk MasterKey) RecoveryKey() RecoveryKey { panic("unimplemented") }

// String renders the recovery key for humans (base32 groups with a checksum).
func (rk RecoveryKey) String() string { panic("unimplemented") }

// ParseRecoveryKey parses String's output (case, spaces and dashes are ignored); a bad checksum is an error.
func ParseRecoveryKey(s string) (RecoveryKey, error) { panic("unimplemented") }

// DeriveRecoveryKeys is DerivePasswordKeys for a recovery key (no Argon2id: it is already 256 bits).
func DeriveRecoveryKeys(rk RecoveryKey) *LoginKeys { panic("unimplemented") }

// Envelope purposes.
const (
	PurposePassword uint8 = 1
	PurposeRecovery uint8 = 2
)

// SealMasterKey wraps mk for account acct. For PurposePassword, kdf is bound into the AAD; for
// PurposeRecovery it must be the zero value.
func SealMasterKey(mk MasterKey, purpose uint8, acct coffer.AccountID, kdf KDFParams, wrap [32]byte) []byte {
	panic("unimplemented")
}

// OpenMasterKey parses and unwraps an envelope. It fails unless the envelope is for acct and purpose.
func OpenMasterKey(envelope []byte, purpose uint8, acct coffer.AccountID, wrap [32]byte) (MasterKey, error) {
	panic("unimplemented")
}

// Login proof purposes.
const (
	ProofLogin    uint8 = 1
	ProofRecover  uint8 = 2
	ProofPassword uint8 = 3 // re-authentication before a password change
)

// LoginMessage is the byte string the client signs with LoginKeys.Login to answer a challenge.
func LoginMessage(acct coffer.AccountID, username string, challenge [32]byte, purpose uint8) []byte {
	panic("unimplemented")
}

// ---- key bundle and public keys ----

// TreeKey is the secret of a tree: top-level node keys are wrapped under a key derived from it.
type TreeKey [32]byte

// ShareKey is a tree key the account holds for a tree it does not own (issue 4).
type ShareKey struct {
	Tree coffer.TreeID
	Key  TreeKey
	Role uint8
}

// Bundle is the account's private key material, AEAD-sealed under a key derived from the master key.
type Bundle struct {
	Account     coffer.AccountID
	Generation  uint64
	SigningSeed [32]byte // Ed25519 seed of the identity key
	KEMSeed     [32]byte // HPKE MLKEM768X25519 DeriveKeyPair input
	Tree        coffer.TreeID
	TreeKey     TreeKey
	Shares      []ShareKey
}

// NewBundle returns generation 1 with fresh keys and a fresh account tree.
func NewBundle(acct coffer.AccountID) *Bundle { panic("unimplemented") }

// Seal encrypts the bundle under mk.
func (b *Bundle) Seal(mk MasterKey) []byte { panic("unimplemented") }

// OpenBundle decrypts and parses a sealed bundle, refusing one for another account.
func OpenBundle(sealed []byte, mk MasterKey, acct coffer.AccountID) (*Bundle, error) {
	panic("unimplemented")
}

// SigningKey returns the identity signing key.
func (b *Bundle) SigningKey() ed25519.PrivateKey { panic("unimplemented") }

// PublicKeys returns the self-signed public key record for this bundle.
func (b *Bundle) PublicKeys(username string) *PublicKeys { panic("unimplemented") }

// PublicKeys is an account's self-signed public key record, served by the server to others.
type PublicKeys struct {
	Account    coffer.AccountID
	Generation uint64
	Username   string
	Signing    ed25519.PublicKey
	KEM        []byte // HPKE MLKEM768X25519 public key
	Sig        [64]byte
}

// ParsePublicKeys parses a record and verifies its self-signature.
func ParsePublicKeys(b []byte) (*PublicKeys, error) { panic("unimplemented") }
func (p *PublicKeys) Marshal() []byte               { panic("unimplemented") }

// Fingerprint is the human-comparable safety number of the record's keys.
func (p *PublicKeys) Fingerprint() string { panic("unimplemented") }

// ---- node records ----

// Kind is a record's type.
type Kind uint8

const (
	KindFolder    Kind = 1
	KindFile      Kind = 2
	KindTombstone Kind = 3
)

// Role marks the special top-level folders of an account tree.
type Role uint8

const (
	RoleNone  Role = 0
	RoleRoot  Role = 1
	RoleTrash Role = 2
)

// Record is one version of a node, as stored by the server. The cleartext header (kind, IDs,
// version, prev hash, author) is readable by the server; the node key and body are encrypted.
type Record struct {
	Kind       Kind
	Node       coffer.NodeID
	Parent     coffer.NodeID
	Version    uint64
	Prev       [32]byte // Hash of the previous version; zero iff Version == 1
	Author     [32]byte // Ed25519 public key of the writer
	WrappedKey []byte   // 60 bytes; empty for tombstones
	Body       []byte   // nonce || AES-GCM ciphertext; empty for tombstones
	Sig        [64]byte
}

// ParseRecord checks structure only (no keys needed); the server uses it too.
func ParseRecord(b []byte) (*Record, error) { panic("unimplemented") }
func (r *Record) Marshal() []byte           { panic("unimplemented") }

// Hash is SHA-256 of Marshal().
func (r *Record) Hash() [32]byte { panic("unimplemented") }

// VerifySignature checks Sig against Author.
func (r *Record) VerifySignature() error { panic("unimplemented") }

// NodeKey is a node's own random key (a folder's key wraps its children's keys).
type NodeKey [32]byte

// NewNodeKey returns a random node key.
func NewNodeKey() NodeKey { panic("unimplemented") }

// WrapKey wraps the node keys of a folder's children.
type WrapKey [32]byte

// WrapKey of a tree (for top-level nodes, Parent == zero).
func (tk TreeKey) WrapKey() WrapKey { panic("unimplemented") }

// WrapKey of a folder (for its children).
func (nk NodeKey) WrapKey() WrapKey { panic("unimplemented") }

// Body is the encrypted part of a folder or file record.
type Body struct {
	Name        string
	MTime       int64 // Unix nanoseconds
	Mode        uint32
	Role        Role
	TrashOrigin coffer.NodeID // the folder a trashed node came from; zero when not in the trash
	Content     *Content      // files only
}

// Content describes one version of a file's content.
type Content struct {
	Key        ContentKey
	Commitment [32]byte
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

// SealRecord builds and signs a folder or file record. parent is the WrapKey of the parent folder
// (or of the tree for top-level nodes).
func SealRecord(kind Kind, node, parentID coffer.NodeID, version uint64, prev [32]byte,
	nk NodeKey, parent WrapKey, body *Body, signer ed25519.PrivateKey) (*Record, error) {
	panic("unimplemented")
}

// SealTombstone builds and signs a tombstone for node's next version.
func SealTombstone(node, parentID coffer.NodeID, version uint64, prev [32]byte, signer ed25519.PrivateKey) *Record {
	panic("unimplemented")
}

// OpenKey unwraps the record's node key.
func (r *Record) OpenKey(parent WrapKey) (NodeKey, error) { panic("unimplemented") }

// OpenBody decrypts and parses the body, and checks it against the kind (files have content whose
// chunk list matches size and chunk size; names are valid).
func (r *Record) OpenBody(nk NodeKey) (*Body, error) { panic("unimplemented") }

// ValidateName rejects names that are empty, longer than 255 bytes, not UTF-8, ".", "..", or
// contain '/' or NUL.
func ValidateName(name string) error { panic("unimplemented") }

// ---- file content ----

// DefaultChunkSize is the plaintext chunk size of new file versions.
const DefaultChunkSize = 1 << 20

// ContentKey is the fresh random key of one file version.
type ContentKey [32]byte

// NewContentKey returns a random content key.
func NewContentKey() ContentKey { panic("unimplemented") }

// Commitment is the key commitment stored in the record.
func (ck ContentKey) Commitment() [32]byte { panic("unimplemented") }

// ContentCipher seals and opens the chunks of one file version. Safe for concurrent use.
type ContentCipher struct{ _ [0]func() }

// Cipher derives the payload key.
func (ck ContentKey) Cipher() *ContentCipher { panic("unimplemented") }

// Seal appends the ciphertext of chunk index to dst.
func (c *ContentCipher) Seal(dst, plain []byte, index uint64, final bool) []byte {
	panic("unimplemented")
}

// Open appends the plaintext of chunk index to dst, or fails with coffer.ErrAuth.
func (c *ContentCipher) Open(dst, ct []byte, index uint64, final bool) ([]byte, error) {
	panic("unimplemented")
}

// ---- heads and state ----

// Head is the signed, hash-chained head of a tree.
type Head struct {
	Tree      coffer.TreeID
	Version   uint64
	Prev      [32]byte // Hash of the previous head; zero iff Version == 1
	StateRoot [32]byte
	OpsHash   [32]byte
	Time      int64 // Unix milliseconds
	Writer    [32]byte
	Sig       [64]byte
}

func ParseHead(b []byte) (*Head, error) { panic("unimplemented") }
func (h *Head) Marshal() []byte         { panic("unimplemented") }
func (h *Head) Hash() [32]byte          { panic("unimplemented") }

// Sign sets Writer and Sig.
func (h *Head) Sign(signer ed25519.PrivateKey) { panic("unimplemented") }

// VerifySignature checks Sig against Writer.
func (h *Head) VerifySignature() error { panic("unimplemented") }

// CheckSuccessor checks that next directly extends prev (version+1 and prev hash). prev == nil
// means next must be version 1.
func CheckSuccessor(prev, next *Head) error { panic("unimplemented") }

// Entry is a node in a folder's commitment.
type Entry struct {
	Node coffer.NodeID
	Hash [32]byte // record hash
}

// FolderRoot commits to a folder's live children; entries must be sorted by Node, unique.
func FolderRoot(folder coffer.NodeID, entries []Entry) [32]byte { panic("unimplemented") }

// FolderSummary is one folder in the index.
type FolderSummary struct {
	Folder coffer.NodeID
	Count  uint64
	Root   [32]byte
}

// BucketOf is the index bucket of a folder: its first byte.
func BucketOf(folder coffer.NodeID) uint8 { return folder[0] }

// BucketHash commits to the non-empty folders of one bucket (sorted by Folder, unique, Count>0).
func BucketHash(bucket uint8, folders []FolderSummary) [32]byte { panic("unimplemented") }

// StateRoot commits to all 256 bucket hashes.
func StateRoot(buckets *[256][32]byte) [32]byte { panic("unimplemented") }

// EmptyBuckets returns the bucket hashes of an empty tree.
func EmptyBuckets() *[256][32]byte { panic("unimplemented") }

// OpsHash commits to the records of one commit (sorted by Node, unique).
func OpsHash(ops []Entry) [32]byte { panic("unimplemented") }
