package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

var _ metastore.Shares = (*Store)(nil)

// appendFeed appends one entry to acct's change feed inside tx and returns its Seq. A sharing
// event has version 0 and empty head and ops.
func appendFeed(ctx context.Context, tx *sql.Tx, acct coffer.AccountID, tree coffer.TreeID, version int64, head, ops []byte) (coffer.Seq, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO account_seq (account, seq) VALUES (?, 1)
		ON CONFLICT (account) DO UPDATE SET seq = seq + 1 RETURNING seq`, acct[:]).Scan(&seq); err != nil {
		return 0, fmt.Errorf("sqlite: shares: next seq: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO changes (account, seq, tree, version, head, ops) VALUES (?, ?, ?, ?, ?, ?)`,
		acct[:], seq, tree[:], version, blob(head), blob(ops)); err != nil {
		return 0, fmt.Errorf("sqlite: shares: append change: %w", err)
	}
	return coffer.Seq(seq), nil
}

// shareEvent appends a sharing event for each account (once each) and returns the notices.
func shareEvent(ctx context.Context, tx *sql.Tx, tree coffer.TreeID, accts ...coffer.AccountID) ([]metastore.Notice, error) {
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

// fanOut appends c's feed entry to every accepted member of c.Tree.
func fanOut(ctx context.Context, tx *sql.Tx, c metastore.Commit) ([]metastore.Notice, error) {
	members, err := acceptedMembers(ctx, tx, c.Tree)
	if err != nil {
		return nil, err
	}
	version, err := u64("commit version", c.Version)
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

func acceptedMembers(ctx context.Context, tx *sql.Tx, tree coffer.TreeID) ([]coffer.AccountID, error) {
	rows, err := tx.QueryContext(ctx, `SELECT account FROM members WHERE tree = ? AND status = ? ORDER BY account`,
		tree[:], string(metastore.MemberAccepted))
	if err != nil {
		return nil, fmt.Errorf("sqlite: shares: members: %w", err)
	}
	defer rows.Close()
	var out []coffer.AccountID
	for rows.Next() {
		var raw []byte
		var a coffer.AccountID
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("sqlite: shares: members: %w", err)
		}
		if err := setID(a[:], raw, "member account"); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: shares: members: %w", err)
	}
	return out, nil
}

// checkInvites validates invites against owner (none is the owner, no account twice).
func checkInvites(owner coffer.AccountID, invites []metastore.ShareInvite) error {
	seen := map[coffer.AccountID]bool{}
	for _, inv := range invites {
		if inv.Account == owner || seen[inv.Account] {
			return fmt.Errorf("sqlite: shares: invite for the owner or twice for %s: %w", inv.Account, coffer.ErrInvalid)
		}
		seen[inv.Account] = true
	}
	return nil
}

// putInvite stores inv: a member that accepted stays accepted (a re-key), any other is invited.
func putInvite(ctx context.Context, tx *sql.Tx, tree coffer.TreeID, inv metastore.ShareInvite, now time.Time) error {
	if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = ?`, inv.Account[:]); err != nil || !ok {
		return cmp(err, fmt.Errorf("sqlite: shares: invited account %s: %w", inv.Account, coffer.ErrNotFound))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO members (tree, account, role, status, epoch, invite, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tree, account) DO UPDATE SET role = excluded.role, epoch = excluded.epoch,
			invite = excluded.invite, updated = excluded.updated,
			status = CASE WHEN members.status = ? THEN members.status ELSE excluded.status END`,
		tree[:], inv.Account[:], int64(inv.Role), string(metastore.MemberInvited), int64(inv.Epoch), blob(inv.Invite),
		now.UnixNano(), string(metastore.MemberAccepted)); err != nil {
		return fmt.Errorf("sqlite: shares: store invite: %w", err)
	}
	return nil
}

// CreateShare implements metastore.Shares.
func (s *Store) CreateShare(ctx context.Context, c metastore.Commit, r metastore.Roster, invites []metastore.ShareInvite, now time.Time) ([]metastore.Notice, error) {
	switch {
	case r.Tree != c.Tree || r.Owner != c.Owner:
		return nil, fmt.Errorf("sqlite: create share: roster names another tree or owner: %w", coffer.ErrInvalid)
	case r.Generation != 1 || c.BaseVersion != 0:
		return nil, fmt.Errorf("sqlite: create share: want roster generation 1 and a first commit: %w", coffer.ErrInvalid)
	}
	if err := checkInvites(r.Owner, invites); err != nil {
		return nil, err
	}
	var out []metastore.Notice
	err := s.write(ctx, func(tx *sql.Tx) error {
		seq, err := s.commitTx(ctx, tx, c)
		if err != nil {
			return err
		}
		out = append(out, metastore.Notice{Account: c.Owner, Seq: seq})
		if _, err := tx.ExecContext(ctx, `INSERT INTO rosters (tree, owner, generation, epoch, roster) VALUES (?, ?, ?, ?, ?)`,
			r.Tree[:], r.Owner[:], 1, int64(r.Epoch), blob(r.Roster)); err != nil {
			return fmt.Errorf("sqlite: create share: roster: %w", err)
		}
		var accts []coffer.AccountID
		for _, inv := range invites {
			if err := putInvite(ctx, tx, r.Tree, inv, now); err != nil {
				return err
			}
			accts = append(accts, inv.Account)
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

func scanRoster(row interface{ Scan(...any) error }) (metastore.Roster, error) {
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
	r, err := scanRoster(s.r.QueryRowContext(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE tree = ?`, tree[:]))
	if err != nil {
		return r, notFound(err, "roster")
	}
	return r, nil
}

// UpdateRoster implements metastore.Shares.
func (s *Store) UpdateRoster(ctx context.Context, u metastore.RosterUpdate) ([]metastore.Notice, error) {
	r := u.Roster
	if u.Commit != nil && (u.Commit.Tree != r.Tree || u.Commit.Owner != r.Owner || u.Commit.BaseVersion != u.HeadVersion) {
		return nil, fmt.Errorf("sqlite: update roster: commit for another tree, owner or base: %w", coffer.ErrInvalid)
	}
	if err := checkInvites(r.Owner, u.Invites); err != nil {
		return nil, err
	}
	gen, err := u64("roster generation", r.Generation)
	if err != nil {
		return nil, err
	}
	var out []metastore.Notice
	err = s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanRoster(tx.QueryRowContext(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE tree = ?`, r.Tree[:]))
		if err != nil {
			return notFound(err, "update roster")
		}
		if cur.Owner != r.Owner {
			return fmt.Errorf("sqlite: update roster: tree %s is not owned by %s: %w", r.Tree, r.Owner, coffer.ErrForbidden)
		}
		var version int64
		if err := tx.QueryRowContext(ctx, `SELECT version FROM trees WHERE id = ?`, r.Tree[:]).Scan(&version); err != nil {
			return notFound(err, "update roster: tree")
		}
		if cur.Generation+1 != r.Generation || uint64(version) != u.HeadVersion {
			return fmt.Errorf("sqlite: update roster: generation %d on stored %d, head %d on stored %d: %w",
				r.Generation, cur.Generation, u.HeadVersion, version, coffer.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rosters SET generation = ?, epoch = ?, roster = ? WHERE tree = ?`,
			gen, int64(r.Epoch), blob(r.Roster), r.Tree[:]); err != nil {
			return fmt.Errorf("sqlite: update roster: %w", err)
		}
		affected := []coffer.AccountID{r.Owner}
		for _, a := range u.Removed {
			if _, err := tx.ExecContext(ctx, `UPDATE members SET status = ?, updated = ? WHERE tree = ? AND account = ?`,
				string(metastore.MemberRemoved), u.Now.UnixNano(), r.Tree[:], a[:]); err != nil {
				return fmt.Errorf("sqlite: update roster: remove: %w", err)
			}
			affected = append(affected, a)
		}
		for _, inv := range u.Invites {
			if err := putInvite(ctx, tx, r.Tree, inv, u.Now); err != nil {
				return err
			}
			affected = append(affected, inv.Account)
		}
		if u.Commit != nil {
			seq, err := s.commitTx(ctx, tx, *u.Commit)
			if err != nil {
				return err
			}
			out = append(out, metastore.Notice{Account: r.Owner, Seq: seq})
			ns, err := fanOut(ctx, tx, *u.Commit)
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

// CommitShared implements metastore.Shares. Like Commit it is group-committed (group.go): it
// shares its transaction and fsync with the other writes waiting at the time, in its own savepoint.
func (s *Store) CommitShared(ctx context.Context, c metastore.Commit) ([]metastore.Notice, error) {
	var out []metastore.Notice
	wctx := context.WithoutCancel(ctx) // a group member's statements must not be interrupted
	err := s.writeGrouped(ctx, func(tx *sql.Tx) error {
		seq, err := s.commitTx(wctx, tx, c)
		if err != nil {
			return err
		}
		out = append(out, metastore.Notice{Account: c.Owner, Seq: seq})
		ns, err := fanOut(wctx, tx, c)
		out = append(out, ns...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const memberColumns = `m.tree, r.owner, m.account, m.role, m.status, m.epoch, m.invite, m.updated`

func scanMember(row interface{ Scan(...any) error }) (metastore.Membership, error) {
	var (
		m                    metastore.Membership
		tree, owner, account []byte
		role, epoch, updated int64
		status               string
	)
	if err := row.Scan(&tree, &owner, &account, &role, &status, &epoch, &m.Invite, &updated); err != nil {
		return m, err
	}
	if err := errors.Join(setID(m.Tree[:], tree, "member tree"), setID(m.Owner[:], owner, "member owner"),
		setID(m.Account[:], account, "member account")); err != nil {
		return m, err
	}
	m.Role, m.Status, m.Epoch, m.Updated = uint8(role), metastore.MemberStatus(status), uint32(epoch), time.Unix(0, updated).UTC()
	return m, nil
}

func (s *Store) members(ctx context.Context, what, where string, args ...any) ([]metastore.Membership, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+memberColumns+` FROM members m JOIN rosters r ON r.tree = m.tree WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	out := []metastore.Membership{}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}

// Membership implements metastore.Shares.
func (s *Store) Membership(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID) (metastore.Membership, error) {
	m, err := scanMember(s.r.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members m JOIN rosters r ON r.tree = m.tree
		WHERE m.tree = ? AND m.account = ?`, tree[:], acct[:]))
	if err != nil {
		return m, notFound(err, "membership")
	}
	return m, nil
}

// Memberships implements metastore.Shares.
func (s *Store) Memberships(ctx context.Context, tree coffer.TreeID) ([]metastore.Membership, error) {
	return s.members(ctx, "memberships", `m.tree = ? ORDER BY m.account`, tree[:])
}

// AccountShares implements metastore.Shares.
func (s *Store) AccountShares(ctx context.Context, acct coffer.AccountID) ([]metastore.Membership, error) {
	return s.members(ctx, "account shares", `m.account = ? ORDER BY m.tree`, acct[:])
}

// OwnedShares implements metastore.Shares.
func (s *Store) OwnedShares(ctx context.Context, owner coffer.AccountID) ([]metastore.Roster, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+rosterColumns+` FROM rosters WHERE owner = ? ORDER BY tree`, owner[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: owned shares: %w", err)
	}
	defer rows.Close()
	out := []metastore.Roster{}
	for rows.Next() {
		r, err := scanRoster(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: owned shares: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: owned shares: %w", err)
	}
	return out, nil
}

// SetMemberStatus implements metastore.Shares.
func (s *Store) SetMemberStatus(ctx context.Context, tree coffer.TreeID, acct coffer.AccountID, from []metastore.MemberStatus,
	to metastore.MemberStatus, epoch uint32, now time.Time) ([]metastore.Notice, error) {
	var out []metastore.Notice
	err := s.write(ctx, func(tx *sql.Tx) error {
		var (
			owner  []byte
			status string
			cur    int64
		)
		err := tx.QueryRowContext(ctx, `SELECT r.owner, m.status, m.epoch FROM members m JOIN rosters r ON r.tree = m.tree
			WHERE m.tree = ? AND m.account = ?`, tree[:], acct[:]).Scan(&owner, &status, &cur)
		if err != nil {
			return notFound(err, "set member status")
		}
		if metastore.MemberStatus(status) != to && !slices.Contains(from, metastore.MemberStatus(status)) {
			return fmt.Errorf("sqlite: set member status: status is %s: %w", status, coffer.ErrNotFound)
		}
		if epoch != 0 && uint32(cur) != epoch {
			return fmt.Errorf("sqlite: set member status: invite epoch is %d, not %d: %w", cur, epoch, coffer.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET status = ?, updated = ? WHERE tree = ? AND account = ?`,
			string(to), now.UnixNano(), tree[:], acct[:]); err != nil {
			return fmt.Errorf("sqlite: set member status: %w", err)
		}
		var o coffer.AccountID
		if err := setID(o[:], owner, "roster owner"); err != nil {
			return err
		}
		out, err = shareEvent(ctx, tx, tree, acct, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TreeBlob implements metastore.Shares.
func (s *Store) TreeBlob(ctx context.Context, tree coffer.TreeID, b coffer.BlobID) (bool, error) {
	ok, err := exists(ctx, s.r, `SELECT 1 FROM node_blobs WHERE blob = ? AND tree = ? LIMIT 1`, b[:], tree[:])
	if err != nil {
		return false, fmt.Errorf("sqlite: tree blob: %w", err)
	}
	return ok, nil
}
