package metastore

import (
	"context"
	"time"

	"coffer"
)

// Shares is the optional store of shared folders: per shared tree the owner-signed roster
// (format.Roster bytes, opaque here) and one membership row per member with the member's latest
// invite and the status the server tracks. A Store that implements it (found by type assertion,
// as for Links) lets the server serve shared trees; every implementation passes metastoretest's
// Shares tests.
//
// The store does not parse rosters or invites: the server validates them and passes the fields
// it needs. Sharing events (roster, invite and status changes) are change-feed entries with
// Version 0 and empty Head and Ops; every method that appends feed entries returns them as
// Notices so the server can publish them.
type Shares interface {
	// CreateShare creates a shared tree atomically: it applies c (the tree's first commit, as
	// Trees.Commit: BaseVersion 0, ErrConflict if the tree exists), stores roster r (Generation
	// 1) and one membership row per invite (status MemberInvited), and appends a sharing event to
	// each invited member's feed. ErrInvalid if r does not name c's tree and owner or an invite
	// names the owner or the same account twice; ErrNotFound if an invited account does not
	// exist. The Notices list the owner's commit entry first.
	CreateShare(ctx context.Context, c Commit, r Roster, invites []ShareInvite, now time.Time) ([]Notice, error)
	// Roster returns a tree's current roster (ErrNotFound if the tree is not shared).
	Roster(ctx context.Context, tree coffer.TreeID) (Roster, error)
	// UpdateRoster installs u.Roster iff the stored generation is u.Roster.Generation-1 and the
	// tree's head version is u.HeadVersion (else ErrConflict, nothing applied; ErrNotFound if
	// the tree is not shared). In the same transaction it marks u.Removed members MemberRemoved,
	// stores u.Invites (a member that had accepted stays MemberAccepted: the invite is a re-key;
	// any other becomes MemberInvited), applies u.Commit if non-nil (as Trees.Commit, after the
	// roster changes), appends the commit to the feeds of the owner and every accepted member,
	// and appends a sharing event to the owner's feed and to the feed of every member invited
	// or removed.
	UpdateRoster(ctx context.Context, u RosterUpdate) ([]Notice, error)
	// CommitShared is Trees.Commit for a shared tree: the same contract, plus the entry is also
	// appended to the feed of every member whose status is MemberAccepted. The Notices list the
	// owner first; Trees.Commit on a shared tree feeds only the owner.
	CommitShared(ctx context.Context, c Commit) ([]Notice, error)
	// Membership returns acct's membership of tree (ErrNotFound if it has none).
	Membership(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID) (Membership, error)
	// Memberships returns every membership row of tree, sorted by account.
	Memberships(ctx context.Context, tree coffer.TreeID) ([]Membership, error)
	// AccountShares returns every membership row of acct (any status), sorted by tree.
	AccountShares(ctx context.Context, acct coffer.AccountID) ([]Membership, error)
	// OwnedShares returns the rosters of the shared trees owner owns, sorted by tree.
	OwnedShares(ctx context.Context, owner coffer.AccountID) ([]Roster, error)
	// SetMemberStatus moves acct's membership of tree to status `to` iff its current status is
	// one of from and, when epoch != 0, its invite's epoch is epoch (ErrConflict on an epoch
	// mismatch; ErrNotFound without a row or in another status). It appends a sharing event to
	// the feeds of acct and the tree's owner. Setting the status it already has is a success
	// (and still notifies).
	SetMemberStatus(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID, from []MemberStatus, to MemberStatus, epoch uint32, now time.Time) ([]Notice, error)
	// TreeBlob reports whether a live or kept record of tree references blob.
	TreeBlob(ctx context.Context, tree coffer.TreeID, blob coffer.BlobID) (bool, error)
}

// MemberStatus is a member's state as the server tracks it (the roster says who is a member;
// this says whether the member took the invite).
type MemberStatus string

// Member statuses. Only MemberAccepted gives access to the tree.
const (
	MemberInvited  MemberStatus = "invited"
	MemberAccepted MemberStatus = "accepted"
	MemberDeclined MemberStatus = "declined"
	MemberLeft     MemberStatus = "left"
	MemberRemoved  MemberStatus = "removed"
)

// Roster is a shared tree's current roster.
type Roster struct {
	Tree       coffer.TreeID
	Owner      coffer.AccountID
	Generation uint64
	Epoch      uint32
	Roster     []byte // format.Roster bytes
}

// ShareInvite is one invite to store: the member's role and the invite's epoch and bytes.
type ShareInvite struct {
	Account coffer.AccountID
	Role    uint8
	Epoch   uint32
	Invite  []byte // format.Invite bytes
}

// Membership is one member's row.
type Membership struct {
	Tree    coffer.TreeID
	Owner   coffer.AccountID
	Account coffer.AccountID
	Role    uint8
	Status  MemberStatus
	Epoch   uint32 // of Invite
	Invite  []byte
	Updated time.Time // when the invite or the status last changed
}

// RosterUpdate is a new roster with what changes with it.
type RosterUpdate struct {
	Roster      Roster
	HeadVersion uint64 // the tree's head version the update was validated against
	Removed     []coffer.AccountID
	Invites     []ShareInvite
	Commit      *Commit // optional; its BaseVersion must be HeadVersion
	Now         time.Time
}

// Notice is a change-feed entry appended for an account, to publish.
type Notice struct {
	Account coffer.AccountID
	Seq     coffer.Seq
}
