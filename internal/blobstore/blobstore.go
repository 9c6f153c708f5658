// Package blobstore defines where the server keeps blob bytes: immutable, content-addressed
// ciphertext (a blob's ID is the SHA-256 of its bytes). Implementations: disk (the embedded
// default) and, later, s3. Every implementation passes blobstoretest.Run.
package blobstore

import (
	"context"
	"io"

	"coffer"
)

// Store keeps blobs. Implementations must be safe for concurrent use.
type Store interface {
	// Put reads exactly size bytes from r and stores them under their SHA-256, which it returns.
	// The blob is durable when Put returns nil. If r yields a different number of bytes, or id is
	// non-zero and does not match the hash, Put stores nothing and returns an error wrapping
	// coffer.ErrCorrupt. Storing an existing blob again succeeds and leaves it intact. A failure
	// leaves no partial blob visible under any ID. A cancelled context gives an error wrapping
	// ctx.Err(), and an error from r stays in the returned error's chain.
	Put(ctx context.Context, id coffer.BlobID, r io.Reader, size int64) (coffer.BlobID, error)
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
