package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Shares = (*Store)(nil)

// Lock order. A shared-tree transaction appends to several accounts' feeds, so it first locks
// every account_seq row it will touch in account order (lockFeeds), and only then member rows
// and the tree row (commitTx re-locks the owner's feed row, which it already holds). UpdateRoster
// locks the roster row before the feeds; nothing locks a roster row after a feed row.

// lockFeeds locks the account_seq rows of accts (deduplicated, in account order).
func lockFeeds(ctx context.Context, tx pgx.Tx, accts ...coffer.AccountID) error {
	ids := make([][]byte, 0, len(accts))
	for _, a := range accts {
		ids = append(ids, bytes.Clone(a[:]))
	}
	slices.SortFunc(ids, bytes.Compare)
	ids = slices.CompactFunc(ids, bytes.Equal)
	rows, err := tx.Query(ctx, `SELECT account FROM account_seq WHERE account = ANY($1) ORDER BY account FOR UPDATE`, ids)
	if err != nil {
		return wrap("shares: lock feeds", err)
	}
	rows.Close()
	return wrap("shares: lock feeds", rows.Err())
}

// appendFeed appends one entry to acct's change feed inside tx and returns its Seq. A sharing
// event has version 0 and empty head and ops.
func appendFeed(ctx context.Context, tx pgx.Tx, acct coffer.AccountID, tree coffer.TreeID, version int64, head, ops []byte) (coffer.Seq, error) {
	var seq int64
	if err := tx.QueryRow(ctx, `INSERT INTO account_seq (account, seq) VALUES ($1, 1)
		ON CONFLICT (account) DO UPDATE SET seq = account_seq.seq + 1 RETURNING seq`, acct[:]).Scan(&seq); err != nil {
		return 0, wrap("shares: next seq", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO changes (account, seq, tree, version, head, ops) VALUES ($1, $2, $3, $4, $5, $6)`,
		acct[:], seq, tree[:], version, blob(head), blob(ops)); err != nil {
		return 0, wrap("shares: append change", err)
	}
	return coffer.Seq(seq), nil
}

// shareEvent appends a sharing event for each account (once each) and returns the notices.
func shareEvent(ctx context.Context, tx pgx.Tx, tree coffer.TreeID, accts ...coffer.AccountID) ([]metastore.Notice, error) {
	var out []metastore.Notice
	seen := map[coffer.AccountID]bool{}
	for _, a := range accts {
		if seen[a] {
			continue
		}
		seen[a] = true
		seq, err := appendFeed(ctx, tx, a, tree, 0, nil, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, metastore.Notice{Account: a, Seq: seq})
	}
	return out, nil
}

// fanOut appends c's feed entry to every account in members.
func fanOut(ctx context.Context, tx pgx.Tx, c metastore.Commit, members []coffer.AccountID) ([]metastore.Notice, error) {
	version, err := i64("commit version", c.Version)
	if err != nil {
		return nil, err
	}
	var out []metastore.Notice
	for _, m := range members {
		seq, err := appendFeed(ctx, tx, m, c.Tree, version, c.Head, c.Ops)
		if err != nil {
			return nil, err
		}
		out = append(out, metastore.Notice{Account: m, Seq: seq})
	}
	return out, nil
}

func acceptedMembers(ctx context.Context, tx pgx.Tx, tree coffer.TreeID) ([]coffer.AccountID, error) {
	rows, err := tx.Query(ctx, `SELECT account FROM members WHERE tree = $1 AND status = $2 ORDER BY account`,
		tree[:], string(metastore.MemberAccepted))
	if err != nil {
		return nil, wrap("shares: members", err)
	}
	defer rows.Close()
	var out []coffer.AccountID
	for rows.Next() {
		var raw []byte
		var a coffer.AccountID
		if err := rows.Scan(&raw); err != nil {
			return nil, wrap("shares: members", err)
		}
		if err := setID(a[:], raw, "member account"); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, wrap("shares: members", rows.Err())
}

// checkInvites validates invites against owner (none is the owner, no account twice).
func checkInvites(owner coffer.AccountID, invites []metastore.ShareInvite) error {
	seen := map[coffer.AccountID]bool{}
	for _, inv := range invites {
		if inv.Account == owner || seen[inv.Account] {
			return fmt.Errorf("postgres: shares: invite for the owner or twice for %s: %w", inv.Account, coffer.ErrInvalid)
		}
		seen[inv.Account] = true
	}
	return nil
}

// putInvite stores inv: a member that accepted stays accepted (a re-key), any other is invited.
func putInvite(ctx context.Context, tx pgx.Tx, tree coffer.TreeID, inv metastore.ShareInvite, now time.Time) error {
	if ok, err := exists(ctx, tx, "shares: invitee", `SELECT 1 FROM accounts WHERE id = $1`, inv.Account[:]); err != nil || !ok {
		return cmp(err, fmt.Errorf("postgres: shares: invited account %s: %w", inv.Account, coffer.ErrNotFound))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO members (tree, account, role, status, epoch, invite, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tree, account) DO UPDATE SET role = excluded.role, epoch = excluded.epoch,
			invite = excluded.invite, updated = excluded.updated,
			status = CASE WHEN members.status = $8 THEN members.status ELSE excluded.status END`,
		tree[:], inv.Account[:], int16(inv.Role), string(metastore.MemberInvited), int64(inv.Epoch), blob(inv.Invite),
		now, string(metastore.MemberAccepted)); err != nil {
		return wrap("shares: store invite", err)
	}
	return nil
}

func inviteAccounts(invites []metastore.ShareInvite) []coffer.AccountID {
	out := make([]coffer.AccountID, len(invites))
	for i, inv := range invites {
		out[i] = inv.Account
	}
	return out
}

// CreateShare implements metastore.Shares.
func (s *Store) CreateShare(ctx context.Context, c metastore.Commit, r metastore.Roster, invites []metastore.ShareInvite, now time.Time) ([]metastore.Notice, error) {
	switch {
	case r.Tree != c.Tree || r.Owner != c.Owner:
		return nil, fmt.Errorf("postgres: create share: roster names another tree or owner: %w", coffer.ErrInvalid)
	case r.Generation != 1 || c.BaseVersion != 0:
		return nil, fmt.Errorf("postgres: create share: want roster generation 1 and a first commit: %w", coffer.ErrInvalid)
	}
	if err := checkInvites(r.Owner, invites); err != nil {
		return nil, err
	}
	var out []metastore.Notice
	err := s.write(ctx, "create share", func(tx pgx.Tx) error {
		accts := inviteAccounts(invites)
		if err := lockFeeds(ctx, tx, append(accts, c.Owner)...); err != nil {
			return err
		}
		seq, err := s.commitTx(ctx, tx, c)
		if err != nil {
			return err
		}
		out = append(out, metastore.Notice{Account: c.Owner, Seq: seq})
		if _, err := tx.Exec(ctx, `INSERT INTO rosters (tree, owner, generation, epoch, roster) VALUES ($1, $2, 1, $3, $4)`,
			r.Tree[:], r.Owner[:], int64(r.Epoch), blob(r.Roster)); err != nil {
			return wrap("create share: roster", err)
		}
		for _, inv := range invites {
			if err := putInvite(ctx, tx, r.Tree, inv, now); err != nil {
				return err
			}
		}
		ns, err := shareEvent(ctx, tx, r.Tree, accts...)
		out = append(out, ns...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const rosterColumns = `tree, owner, generation, epoch, roster`

func scanRoster(row pgx.Row) (metastore.Roster, error) {
	var (
		r           metastore.Roster
		tree, owner []byte
		gen, epoch  int64
	)
	if err := row.Scan(&tree, &owner, &gen, &epoch, &r.Roster); err != nil {
		return r, err
	}
	if err := errors.Join(setID(r.Tree[:], tree, "roster tree"), setID(r.Owner[:], owner, "roster owner")); err != nil {
		return r, err
	}
	r.Generation, r.Epoch = uint64(gen), uint32(epoch)
	return r, nil
}

// Roster implements metastore.Shares.
func (s *Store) Roster(ctx context.Context, tree coffer.TreeID) (metastore.Roster, error) {
	r, err := scanRoster(s.pool.QueryRow(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE tree = $1`, tree[:]))
	if err != nil {
		return r, notFound(err, "roster")
	}
	return r, nil
}

// UpdateRoster implements metastore.Shares.
func (s *Store) UpdateRoster(ctx context.Context, u metastore.RosterUpdate) ([]metastore.Notice, error) {
	r := u.Roster
	if u.Commit != nil && (u.Commit.Tree != r.Tree || u.Commit.Owner != r.Owner || u.Commit.BaseVersion != u.HeadVersion) {
		return nil, fmt.Errorf("postgres: update roster: commit for another tree, owner or base: %w", coffer.ErrInvalid)
	}
	if err := checkInvites(r.Owner, u.Invites); err != nil {
		return nil, err
	}
	gen, err := i64("roster generation", r.Generation)
	if err != nil {
		return nil, err
	}
	var out []metastore.Notice
	err = s.write(ctx, "update roster", func(tx pgx.Tx) error {
		// The roster row lock serialises updates of one tree.
		cur, err := scanRoster(tx.QueryRow(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE tree = $1 FOR UPDATE`, r.Tree[:]))
		if err != nil {
			return notFound(err, "update roster")
		}
		if cur.Owner != r.Owner {
			return fmt.Errorf("postgres: update roster: tree %s is not owned by %s: %w", r.Tree, r.Owner, coffer.ErrForbidden)
		}
		affected := append([]coffer.AccountID{r.Owner}, u.Removed...)
		affected = append(affected, inviteAccounts(u.Invites)...)
		var members []coffer.AccountID
		if u.Commit != nil {
			if members, err = acceptedMembers(ctx, tx, r.Tree); err != nil {
				return err
			}
		}
		if err := lockFeeds(ctx, tx, append(slices.Clone(affected), members...)...); err != nil {
			return err
		}
		var version int64
		if err := tx.QueryRow(ctx, `SELECT version FROM trees WHERE id = $1`, r.Tree[:]).Scan(&version); err != nil {
			return notFound(err, "update roster: tree")
		}
		if cur.Generation+1 != r.Generation || uint64(version) != u.HeadVersion {
			return fmt.Errorf("postgres: update roster: generation %d on stored %d, head %d on stored %d: %w",
				r.Generation, cur.Generation, u.HeadVersion, version, coffer.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE rosters SET generation = $1, epoch = $2, roster = $3 WHERE tree = $4`,
			gen, int64(r.Epoch), blob(r.Roster), r.Tree[:]); err != nil {
			return wrap("update roster", err)
		}
		for _, a := range u.Removed {
			if _, err := tx.Exec(ctx, `UPDATE members SET status = $1, updated = $2 WHERE tree = $3 AND account = $4`,
				string(metastore.MemberRemoved), u.Now, r.Tree[:], a[:]); err != nil {
				return wrap("update roster: remove", err)
			}
			members = slices.DeleteFunc(members, func(m coffer.AccountID) bool { return m == a })
		}
		for _, inv := range u.Invites {
			if err := putInvite(ctx, tx, r.Tree, inv, u.Now); err != nil {
				return err
			}
		}
		if u.Commit != nil {
			seq, err := s.commitTx(ctx, tx, *u.Commit)
			if err != nil {
				return err
			}
			out = append(out, metastore.Notice{Account: r.Owner, Seq: seq})
			ns, err := fanOut(ctx, tx, *u.Commit, members)
			if err != nil {
				return err
			}
			out = append(out, ns...)
		}
		ns, err := shareEvent(ctx, tx, r.Tree, affected...)
		out = append(out, ns...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CommitShared implements metastore.Shares.
func (s *Store) CommitShared(ctx context.Context, c metastore.Commit) ([]metastore.Notice, error) {
	var out []metastore.Notice
	err := s.write(ctx, "commit", func(tx pgx.Tx) error {
		members, err := acceptedMembers(ctx, tx, c.Tree)
		if err != nil {
			return err
		}
		if len(members) > 0 {
			if err := lockFeeds(ctx, tx, append(members, c.Owner)...); err != nil {
				return err
			}
		}
		seq, err := s.commitTx(ctx, tx, c)
		if err != nil {
			return err
		}
		out = append(out, metastore.Notice{Account: c.Owner, Seq: seq})
		ns, err := fanOut(ctx, tx, c, members)
		out = append(out, ns...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const memberColumns = `m.tree, r.owner, m.account, m.role, m.status, m.epoch, m.invite, m.updated`

func scanMember(row pgx.Row) (metastore.Membership, error) {
	var (
		m                    metastore.Membership
		tree, owner, account []byte
		role                 int16
		epoch                int64
		status               string
	)
	if err := row.Scan(&tree, &owner, &account, &role, &status, &epoch, &m.Invite, &m.Updated); err != nil {
		return m, err
	}
	if err := errors.Join(setID(m.Tree[:], tree, "member tree"), setID(m.Owner[:], owner, "member owner"),
		setID(m.Account[:], account, "member account")); err != nil {
		return m, err
	}
	m.Role, m.Status, m.Epoch, m.Updated = uint8(role), metastore.MemberStatus(status), uint32(epoch), m.Updated.UTC()
	return m, nil
}

func (s *Store) members(ctx context.Context, what, where string, args ...any) ([]metastore.Membership, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+memberColumns+` FROM members m JOIN rosters r ON r.tree = m.tree WHERE `+where, args...)
	if err != nil {
		return nil, wrap(what, err)
	}
	defer rows.Close()
	out := []metastore.Membership{}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, wrap(what, err)
		}
		out = append(out, m)
	}
	return out, wrap(what, rows.Err())
}

// Membership implements metastore.Shares.
func (s *Store) Membership(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID) (metastore.Membership, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `SELECT `+memberColumns+` FROM members m JOIN rosters r ON r.tree = m.tree
		WHERE m.tree = $1 AND m.account = $2`, tree[:], acct[:]))
	if err != nil {
		return m, notFound(err, "membership")
	}
	return m, nil
}

// Memberships implements metastore.Shares.
func (s *Store) Memberships(ctx context.Context, tree coffer.TreeID) ([]metastore.Membership, error) {
	return s.members(ctx, "memberships", `m.tree = $1 ORDER BY m.account`, tree[:])
}

// AccountShares implements metastore.Shares.
func (s *Store) AccountShares(ctx context.Context, acct coffer.AccountID) ([]metastore.Membership, error) {
	return s.members(ctx, "account shares", `m.account = $1 ORDER BY m.tree`, acct[:])
}

// OwnedShares implements metastore.Shares.
func (s *Store) OwnedShares(ctx context.Context, owner coffer.AccountID) ([]metastore.Roster, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE owner = $1 ORDER BY tree`, owner[:])
	if err != nil {
		return nil, wrap("owned shares", err)
	}
	defer rows.Close()
	out := []metastore.Roster{}
	for rows.Next() {
		r, err := scanRoster(rows)
		if err != nil {
			return nil, wrap("owned shares", err)
		}
		out = append(out, r)
	}
	return out, wrap("owned shares", rows.Err())
}

// SetMemberStatus implements metastore.Shares.
func (s *Store) SetMemberStatus(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID, from []metastore.MemberStatus,
	to metastore.MemberStatus, epoch uint32, now time.Time) ([]metastore.Notice, error) {
	const what = "set member status"
	var out []metastore.Notice
	err := s.write(ctx, what, func(tx pgx.Tx) error {
		var (
			ownerRaw []byte
			status   string
			cur      int64
			owner    coffer.AccountID
		)
		// Feeds first (the lock order of every shares transaction), then the member row.
		if err := tx.QueryRow(ctx, `SELECT owner FROM rosters WHERE tree = $1`, tree[:]).Scan(&ownerRaw); err != nil {
			return notFound(err, what)
		}
		if err := setID(owner[:], ownerRaw, "roster owner"); err != nil {
			return err
		}
		if err := lockFeeds(ctx, tx, acct, owner); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT status, epoch FROM members WHERE tree = $1 AND account = $2 FOR UPDATE`,
			tree[:], acct[:]).Scan(&status, &cur)
		if err != nil {
			return notFound(err, what)
		}
		if metastore.MemberStatus(status) != to && !slices.Contains(from, metastore.MemberStatus(status)) {
			return fmt.Errorf("postgres: set member status: status is %s: %w", status, coffer.ErrNotFound)
		}
		if epoch != 0 && uint32(cur) != epoch {
			return fmt.Errorf("postgres: set member status: invite epoch is %d, not %d: %w", cur, epoch, coffer.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE members SET status = $1, updated = $2 WHERE tree = $3 AND account = $4`,
			string(to), now, tree[:], acct[:]); err != nil {
			return wrap(what, err)
		}
		out, err = shareEvent(ctx, tx, tree, acct, owner)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TreeBlob implements metastore.Shares.
func (s *Store) TreeBlob(ctx context.Context, tree coffer.TreeID, b coffer.BlobID) (bool, error) {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM node_blobs WHERE blob = $1 AND tree = $2 LIMIT 1`, b[:], tree[:]).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap("tree blob", err)
	}
	return true, nil
}
