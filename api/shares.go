package api

import "coffer"

// Shared folders (doc/PROTOCOL.md, "Shared folders"). A shared folder is its own tree, owned by
// the sharer, with a signed roster (format.Roster, FORMAT.md §12.4) the server enforces and
// invites (format.Invite) that carry the tree key to each member. An invite is named by its tree:
// an account has at most one current invite per tree (a re-key invite replaces the older one).

// Membership statuses as the server tracks them (MemberStatus.Status, InviteInfo.Status,
// IncomingShare.Status). Only StatusAccepted gives access to the tree.
const (
	StatusInvited  = "invited"  // an invite is pending
	StatusAccepted = "accepted" // the member accepted: it may read (and, with the write role, write)
	StatusDeclined = "declined" // the member declined the invite
	StatusLeft     = "left"     // the member left after accepting
	StatusRemoved  = "removed"  // the roster marks the member removed (revoked)
)

// ShareCreateRequest: POST /v1/trees (auth). Creates a shared tree owned by the caller, in one
// transaction: Commit is the tree's first commit (base_version 0, head version 1, written by the
// caller's identity key), Roster its generation-1 roster (owner = the caller, signed with the
// caller's identity key, epoch 1) and Invites one invite for every active member of the roster.
// Response: CommitResponse. Errors: 400, 409 exists (tree ID taken), 422 invalid_commit.
type ShareCreateRequest struct {
	Tree    coffer.TreeID `json:"tree"`
	Roster  []byte        `json:"roster"`
	Commit  CommitRequest `json:"commit"`
	Invites [][]byte      `json:"invites,omitempty"`
}

// MemberStatus is one roster member as the server tracks it.
type MemberStatus struct {
	Account  coffer.AccountID `json:"account"`
	Username string           `json:"username"` // informational: the roster's keys are what count
	Role     uint8            `json:"role"`     // format.ShareRead or format.ShareWrite
	Status   string           `json:"status"`   // StatusInvited ... StatusRemoved
	Epoch    uint32           `json:"epoch"`    // epoch of the member's latest invite
}

// RosterResponse: GET /v1/trees/{tree}/roster (auth; the owner and every member listed active
// whose status is invited or accepted; others get 404). Roster is the current format.Roster;
// the client verifies it against the owner's trusted key and its pinned generation.
type RosterResponse struct {
	Tree            coffer.TreeID    `json:"tree"`
	Roster          []byte           `json:"roster"`
	Owner           coffer.AccountID `json:"owner"`
	OwnerUsername   string           `json:"owner_username"`
	OwnerPublicKeys []byte           `json:"owner_public_keys"` // format.PublicKeys of the owner
	Members         []MemberStatus   `json:"members"`           // sorted by account
	// Head is the tree's current head version (the `until` of a member removed now).
	Head uint64 `json:"head"`
}

// RosterUpdateRequest: POST /v1/trees/{tree}/roster (auth; owner only, else 404 / 403). Roster is
// the next roster (generation = stored + 1, else 409 conflict); Invites carry the tree key of the
// roster's epoch to members: required for every newly added member and, when the epoch grows,
// for every active member. Commit, if present, is applied in the same transaction (a revoke: the
// key-rotation commit). A member newly removed must have until = the head version before Commit
// (else 409 conflict: the head moved; re-read and retry). Response: RosterUpdateResponse.
type RosterUpdateRequest struct {
	Roster  []byte         `json:"roster"`
	Invites [][]byte       `json:"invites,omitempty"`
	Commit  *CommitRequest `json:"commit,omitempty"`
}

// RosterUpdateResponse answers a roster update.
type RosterUpdateResponse struct {
	Generation uint64          `json:"generation"`
	Commit     *CommitResponse `json:"commit,omitempty"`
}

// InviteInfo is one invite addressed to the caller (GET /v1/invites). Status is StatusInvited
// (pending: accept or decline it) or StatusAccepted (the caller already accepted the tree and
// this is the current-epoch invite: a re-key after a rotation if Epoch is newer than the key the
// client holds).
type InviteInfo struct {
	Tree            coffer.TreeID    `json:"tree"`
	Invite          []byte           `json:"invite"` // format.Invite bytes
	Epoch           uint32           `json:"epoch"`
	Role            uint8            `json:"role"`
	Status          string           `json:"status"`
	Owner           coffer.AccountID `json:"owner"`
	OwnerUsername   string           `json:"owner_username"`
	OwnerPublicKeys []byte           `json:"owner_public_keys"`
	Roster          []byte           `json:"roster"`  // the tree's current roster
	Created         int64            `json:"created"` // Unix seconds, when this invite was stored
}

// InvitesResponse: GET /v1/invites (auth), sorted by tree.
type InvitesResponse struct {
	Invites []InviteInfo `json:"invites"`
}

// InviteAcceptRequest: POST /v1/invites/{tree}/accept (auth). Epoch is the epoch of the invite the
// client verified; 409 conflict if the current invite has another epoch, 404 if the caller has no
// invite for the tree (or was removed). 204 on success: the caller gets access to the tree.
// POST /v1/invites/{tree}/decline (auth, empty body) declines a pending invite (204).
// POST /v1/trees/{tree}/leave (auth, empty body) ends an accepted membership (204); the server
// drops the caller's access. Only a new invite from the owner restores it.
type InviteAcceptRequest struct {
	Epoch uint32 `json:"epoch"`
}

// OutgoingShare is one shared tree the caller owns.
type OutgoingShare struct {
	Tree    coffer.TreeID  `json:"tree"`
	Roster  []byte         `json:"roster"`
	Members []MemberStatus `json:"members"`
}

// IncomingShare is one shared tree of another account the caller is (or was) a member of.
type IncomingShare struct {
	Tree          coffer.TreeID    `json:"tree"`
	Owner         coffer.AccountID `json:"owner"`
	OwnerUsername string           `json:"owner_username"`
	Role          uint8            `json:"role"`
	Status        string           `json:"status"`
	Epoch         uint32           `json:"epoch"`
}

// SharesResponse: GET /v1/shares (auth): the caller's outgoing and incoming shares, each sorted
// by tree.
type SharesResponse struct {
	Outgoing []OutgoingShare `json:"outgoing"`
	Incoming []IncomingShare `json:"incoming"`
}

// Account keys: GET /v1/accounts/{account}/keys (auth) answers UserKeysResponse for an account
// ID (roster members are named by account). Verify the record; the server is not the root of
// trust for it.
//
// Shared-tree blobs: GET /v1/trees/{tree}/blobs/{id} (auth; Range as for GET /v1/blobs/{id})
// serves a blob referenced by a live or kept record of the tree to anyone who may read the tree.
// POST /v1/trees/{tree}/blobs/check (auth; writers) answers BlobsResponse against the blobs of
// the tree's owner (uploads into a shared tree belong to its owner).
//
// Change feed: a commit to a shared tree appends an entry to the feed of the owner and of every
// accepted member. Roster, invite and membership changes append a sharing event to the feeds of
// the affected accounts: a Change (and ChangeEvent) with Version 0 and no head or ops, naming the
// tree; the client re-reads GET /v1/invites and the tree's roster.

// BundleUpdateRequest: PUT /v1/account/bundle (auth) replaces the caller's sealed key bundle
// (it changes when the account gains, loses or re-keys a shared tree). Generation must be the
// stored generation + 1 (else 409 conflict: another device changed it; re-read GET /v1/account);
// the bundle's cleartext header must name the caller and Generation; PublicKeys is the caller's
// public-key record re-signed for Generation (format.PublicKeys.Generation equals the bundle's)
// with the same username, signing key and KEM key as the stored one. 204 on success.
type BundleUpdateRequest struct {
	Bundle     []byte `json:"bundle"`
	Generation uint64 `json:"generation"`
	PublicKeys []byte `json:"public_keys"`
}
