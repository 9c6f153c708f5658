package api

// Head history and head gossip (doc/PROTOCOL.md §5, "Forks and freezes" in doc/DESIGN.md).

// HeadsContentType is the media type of GET /v1/trees/{tree}/heads?from=V&to=W: the tree's
// heads with V <= version <= W, by ascending version, each format.HeadLen bytes, concatenated;
// at most MaxHeads of them (ask again from the next version for more). A version the server has
// no head for ends the answer early.
const HeadsContentType = "application/x-coffer-heads"

// MaxHeads bounds the heads of one GET /v1/trees/{tree}/heads answer (≈ 228 KiB).
const MaxHeads = 1000

// MaxSeenHeads bounds the published heads one PUT /v1/trees/{tree}/seen answer carries.
const MaxSeenHeads = 64

// SeenRequest: PUT /v1/trees/{tree}/seen publishes the latest head the session verified.
type SeenRequest struct {
	Head []byte `json:"head"` // format.Head bytes
}

// SeenResponse answers a SeenRequest. The server reads Heads before Current, so an honest server
// never answers a published head newer than Current.
type SeenResponse struct {
	// Current is the tree's current head.
	Current HeadInfo `json:"current"`
	// Heads are the latest heads published for the tree, one per session, most recent first
	// (the caller's own included, Own set), at most MaxSeenHeads.
	Heads []SeenHead `json:"heads"`
}

// SeenHead is one session's published head.
type SeenHead struct {
	Session   string `json:"session"`
	Device    string `json:"device"`
	Head      []byte `json:"head"`
	Published int64  `json:"published"` // when it first published Head: Unix ms, server clock (informational)
	Own       bool   `json:"own,omitempty"`
}
