// Package blobstore defines where the server keeps blob bytes: immutable ciphertext under the
// 32-byte name its uploader gave it (doc/FORMAT.md §8). Implementations: disk (the embedded default) and s3. Every implementation passes
// blobstoretest.Run.
//
// The store does not hash what it stores: the caller names each blob (the server takes the ID the
// uploading client computed) and Put checks only a CRC-32C transfer checksum. What makes that safe
// is that a stored blob is never replaced: the first bytes stored under an ID stay until Delete.
package blobstore

import (
	"context"
	"hash/crc32"
	"io"

	"coffer"
)

// CRC32C is the table of the CRC-32C (Castagnoli) transfer checksum that Put checks, hardware
// accelerated on amd64 and arm64: crc32.Update(0, blobstore.CRC32C, b) or crc32.Checksum(b,
// blobstore.CRC32C).
var CRC32C = crc32.MakeTable(crc32.Castagnoli)

// Store keeps blobs. Implementations must be safe for concurrent use.
type Store interface {
	// Put stores exactly size bytes read from r under id and reports whether it stored them
	// (true) or found a blob already stored under id (false). It does not hash the bytes: id is
	// the caller's claim. It checks the transfer: if r yields a different number of bytes, or
	// bytes whose CRC-32C (Castagnoli, see CRC32C) is not crc, Put stores nothing and returns an
	// error wrapping coffer.ErrCorrupt. It reads and checks r in full even when id is already
	// stored.
	//
	// A blob already stored under id is never replaced or changed, not even in part: Put then
	// leaves it as it is and returns false (the caller decides whether the stored bytes are the
	// ones it meant). Of concurrent Puts of one id, at most one returns true, and the blob stored
	// is entirely the bytes of the Put that returned true (or of an earlier one).
	//
	// The blob is durable when Put returns nil. A failure leaves no partial blob visible under any
	// ID. A cancelled context gives an error wrapping ctx.Err(), and an error from r stays in the
	// returned error's chain.
	Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64, crc uint32) (bool, error)
	// Get returns length bytes from offset (length < 0: to the end), or an error wrapping
	// coffer.ErrNotFound. A range past the end is an error wrapping coffer.ErrInvalid. The caller
	// closes the reader.
	Get(ctx context.Context, id coffer.BlobID, offset, length int64) (io.ReadCloser, error)
	// Stat returns the blob's size, or an error wrapping coffer.ErrNotFound.
	Stat(ctx context.Context, id coffer.BlobID) (int64, error)
	// Delete removes a blob. Deleting an absent blob is not an error.
	Delete(ctx context.Context, id coffer.BlobID) error
	// List calls fn for every stored blob in ascending ID order; an error from fn stops it and is
	// returned.
	List(ctx context.Context, fn func(id coffer.BlobID, size int64) error) error
}
