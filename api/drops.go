package api

import "coffer"

// Drops: anonymous uploads through upload-only (file-request) links (doc/PROTOCOL.md §8).
//
// A visitor holding the link opens it (challenge, open) and, with the link token, uploads the
// encrypted chunks as blobs (PUT /v1/links/{link}/blobs/{id}, raw body with HeaderCRC32C, answered
// with BlobPutResponse) and then one drop per file or empty folder (POST /v1/links/{link}/drops).
// The owner lists pending drops (GET /v1/drops), imports them into the folder as records it signs
// itself, and deletes them (DELETE /v1/drops/{drop}).

// MaxDropBlobs bounds the blobs one drop may reference.
const MaxDropBlobs = 100000

// DropCreateRequest: POST /v1/links/{link}/drops (link token). Drop is the format.Drop bytes;
// Blobs the blobs its content references (for quota and GC: the authoritative chunk list is
// encrypted), each uploaded through the same link.
type DropCreateRequest struct {
	Drop  []byte          `json:"drop"`
	Blobs []coffer.BlobID `json:"blobs"`
}

// DropCreateResponse answers a stored drop: the link's upload count after it, and its limit
// (0 = unlimited).
type DropCreateResponse struct {
	Uploads    int64 `json:"uploads"`
	MaxUploads int64 `json:"max_uploads,omitempty"`
}

// DropInfo is one pending drop.
type DropInfo struct {
	ID      string          `json:"id"`   // hex drop ID
	Seq     int64           `json:"seq"`  // listing cursor, increasing
	Link    string          `json:"link"` // hex link ID
	Drop    []byte          `json:"drop"` // format.Drop bytes
	Blobs   []coffer.BlobID `json:"blobs"`
	Created int64           `json:"created"` // Unix seconds
}

// DropsResponse: GET /v1/drops?after=SEQ&limit=N (auth): the caller's pending drops with seq >
// after, oldest first, at most limit (1…1000, default 100); More when there are further ones.
type DropsResponse struct {
	Drops []DropInfo `json:"drops"`
	More  bool       `json:"more"`
}

// DropsEvent is the data of an "event: drops" on the change stream: the number of pending
// drops, sent when it grows.
type DropsEvent struct {
	Pending int64 `json:"pending"`
}

// MaxDropsDelete bounds one POST /v1/drops/delete.
const MaxDropsDelete = 1000

// DropsDeleteRequest: POST /v1/drops/delete (auth): remove up to MaxDropsDelete of the caller's
// pending drops (hex IDs) in one transaction; IDs that are not the caller's pending drops are
// ignored.
type DropsDeleteRequest struct {
	Drops []string `json:"drops"`
}

// DropsDeleteResponse is the number of drops removed.
type DropsDeleteResponse struct {
	Deleted int `json:"deleted"`
}
