package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// exists reports whether query (which selects one row by its arguments) finds a row.
func exists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: %w", err)
	}
	return true, nil
}

// CreateAccount implements metastore.Accounts. The first commit must be version 1 of a.Tree,
// owned by a.ID (ErrInvalid otherwise); a tree ID already in use is ErrExist.
func (s *Store) CreateAccount(ctx context.Context, a metastore.Account, invite string, first metastore.Commit) (coffer.Seq, error) {
	switch {
	case a.Username == "":
		return 0, fmt.Errorf("sqlite: create account: empty username: %w", coffer.ErrInvalid)
	case a.Quota < 0:
		return 0, fmt.Errorf("sqlite: create account: negative quota %d: %w", a.Quota, coffer.ErrInvalid)
	case first.Owner != a.ID || first.Tree != a.Tree:
		return 0, fmt.Errorf("sqlite: create account: first commit is not for the account's tree: %w", coffer.ErrInvalid)
	case first.BaseVersion != 0 || first.Version != 1:
		return 0, fmt.Errorf("sqlite: create account: first commit has version %d on base %d, want 1 on 0: %w",
			first.Version, first.BaseVersion, coffer.ErrInvalid)
	}
	bgen, err := u64("bundle generation", a.BundleGeneration)
	if err != nil {
		return 0, err
	}
	var seq coffer.Seq
	err = s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = ?`, a.ID[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create account: id %s: %w", a.ID, coffer.ErrExist))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE username = ?`, a.Username); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create account: username taken: %w", coffer.ErrExist))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM trees WHERE id = ?`, a.Tree[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create account: tree %s: %w", a.Tree, coffer.ErrExist))
		}
		if invite != "" {
			res, err := s.wq.in(tx).ExecContext(ctx, `UPDATE invites SET used_by = ?, used_at = ? WHERE code = ? AND used_by IS NULL`,
				a.ID[:], time.Now().UnixNano(), invite)
			if err != nil {
				return fmt.Errorf("sqlite: create account: use invite: %w", err)
			}
			if n, err := affected(res); err != nil || n != 1 {
				return cmp(err, fmt.Errorf("sqlite: create account: invite unknown or already used: %w", coffer.ErrNotFound))
			}
		}
		c := a.Credentials
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO accounts (id, username, created, kdf, login_key, master_key,
				recovery_login_key, recovery_master_key, bundle, bundle_gen, public_keys, tree, quota)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID[:], a.Username, nanos(a.Created), c.KDF, c.LoginKey, c.MasterKey, c.RecoveryLoginKey,
			c.RecoveryMasterKey, a.Bundle, bgen, a.PublicKeys, a.Tree[:], a.Quota); err != nil {
			return fmt.Errorf("sqlite: create account: %w", err)
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO usage (account) VALUES (?)`, a.ID[:]); err != nil {
			return fmt.Errorf("sqlite: create account: %w", err)
		}
		var err error
		seq, err = s.commitTx(ctx, tx, first)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// cmp returns err if it is non-nil, else alt.
func cmp(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

const accountColumns = `id, username, created, kdf, login_key, master_key, recovery_login_key,
	recovery_master_key, bundle, bundle_gen, public_keys, tree, quota`

func scanAccount(row *sql.Row) (metastore.Account, error) {
	var (
		a              metastore.Account
		rawID, rawTree []byte
		created        sql.NullInt64
		gen            int64
		c              = &a.Credentials
	)
	if err := row.Scan(&rawID, &a.Username, &created, &c.KDF, &c.LoginKey, &c.MasterKey, &c.RecoveryLoginKey,
		&c.RecoveryMasterKey, &a.Bundle, &gen, &a.PublicKeys, &rawTree, &a.Quota); err != nil {
		return a, err
	}
	a.Created = fromNanos(created)
	a.BundleGeneration = uint64(gen)
	if err := setID(a.ID[:], rawID, "account id"); err != nil {
		return a, err
	}
	return a, setID(a.Tree[:], rawTree, "tree id")
}

// Account implements metastore.Accounts.
func (s *Store) Account(ctx context.Context, id coffer.AccountID) (metastore.Account, error) {
	a, err := scanAccount(s.rq.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id[:]))
	if err != nil {
		return metastore.Account{}, notFound(err, "account %s", id)
	}
	return a, nil
}

// AccountByName implements metastore.Accounts. Names match exactly (byte for byte).
func (s *Store) AccountByName(ctx context.Context, username string) (metastore.Account, error) {
	a, err := scanAccount(s.rq.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = ?`, username))
	if err != nil {
		return metastore.Account{}, notFound(err, "account by name")
	}
	return a, nil
}

// SetCredentials implements metastore.Accounts (ErrNotFound for an unknown account).
func (s *Store) SetCredentials(ctx context.Context, id coffer.AccountID, c metastore.Credentials) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.wq.in(tx).ExecContext(ctx, `UPDATE accounts SET kdf = ?, login_key = ?, master_key = ?,
			recovery_login_key = ?, recovery_master_key = ? WHERE id = ?`,
			c.KDF, c.LoginKey, c.MasterKey, c.RecoveryLoginKey, c.RecoveryMasterKey, id[:])
		if err != nil {
			return fmt.Errorf("sqlite: set credentials: %w", err)
		}
		if n, err := affected(res); err != nil || n == 0 {
			return cmp(err, fmt.Errorf("sqlite: set credentials: account %s: %w", id, coffer.ErrNotFound))
		}
		return nil
	})
}

// SetBundle implements metastore.Accounts: ErrInvalid if newGen <= oldGen, ErrNotFound for an
// unknown account, ErrConflict if the stored generation is not oldGen.
func (s *Store) SetBundle(ctx context.Context, id coffer.AccountID, oldGen, newGen uint64, bundle, publicKeys []byte) error {
	if newGen <= oldGen {
		return fmt.Errorf("sqlite: set bundle: new generation %d not above %d: %w", newGen, oldGen, coffer.ErrInvalid)
	}
	o, err := u64("bundle generation", oldGen)
	if err != nil {
		return err
	}
	n, err := u64("bundle generation", newGen)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var cur int64
		err := s.wq.in(tx).QueryRowContext(ctx, `SELECT bundle_gen FROM accounts WHERE id = ?`, id[:]).Scan(&cur)
		if err != nil {
			return notFound(err, "set bundle: account %s", id)
		}
		if cur != o {
			return fmt.Errorf("sqlite: set bundle: stored generation is %d, not %d: %w", cur, o, coffer.ErrConflict)
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `UPDATE accounts SET bundle = ?, bundle_gen = ?, public_keys = ? WHERE id = ?`,
			bundle, n, publicKeys, id[:]); err != nil {
			return fmt.Errorf("sqlite: set bundle: %w", err)
		}
		return nil
	})
}

// CreateInvite implements metastore.Accounts.
func (s *Store) CreateInvite(ctx context.Context, code string, created time.Time) error {
	if code == "" {
		return fmt.Errorf("sqlite: create invite: empty code: %w", coffer.ErrInvalid)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM invites WHERE code = ?`, code); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create invite: %w", coffer.ErrExist))
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO invites (code, created) VALUES (?, ?)`, code, nanos(created)); err != nil {
			return fmt.Errorf("sqlite: create invite: %w", err)
		}
		return nil
	})
}

// LoginFailures implements metastore.Accounts: an unknown key has 0 failures and a zero time.
func (s *Store) LoginFailures(ctx context.Context, key string) (int, time.Time, error) {
	var (
		n    int
		last sql.NullInt64
	)
	err := s.rq.QueryRowContext(ctx, `SELECT n, last FROM login_failures WHERE key = ?`, key).Scan(&n, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: login failures: %w", err)
	}
	return n, fromNanos(last), nil
}

// SetLoginFailures implements metastore.Accounts (ErrInvalid for n < 0).
func (s *Store) SetLoginFailures(ctx context.Context, key string, n int, last time.Time) error {
	if n < 0 {
		return fmt.Errorf("sqlite: set login failures: negative count %d: %w", n, coffer.ErrInvalid)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if n == 0 {
			_, err = s.wq.in(tx).ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, key)
		} else {
			_, err = s.wq.in(tx).ExecContext(ctx, `INSERT INTO login_failures (key, n, last) VALUES (?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET n = excluded.n, last = excluded.last`, key, n, nanos(last))
		}
		if err != nil {
			return fmt.Errorf("sqlite: set login failures: %w", err)
		}
		return nil
	})
}

// ---- sessions ----

// CreateSession implements metastore.Sessions: ErrExist if the ID or token hash is in use,
// ErrNotFound if the account does not exist.
func (s *Store) CreateSession(ctx context.Context, se metastore.Session) error {
	if se.ID == "" {
		return fmt.Errorf("sqlite: create session: empty id: %w", coffer.ErrInvalid)
	}
	wait := ctx
	ctx = context.WithoutCancel(ctx) // a group member's statements must not be interrupted
	return s.writeGrouped(wait, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = ?`, se.Account[:]); err != nil || !ok {
			return cmp(err, fmt.Errorf("sqlite: create session: account %s: %w", se.Account, coffer.ErrNotFound))
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM sessions WHERE id = ? OR token_hash = ?`, se.ID, se.TokenHash[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("sqlite: create session: %w", coffer.ErrExist))
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO sessions (id, account, token_hash, device, created, last_used, expires)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, se.ID, se.Account[:], se.TokenHash[:], se.Device,
			nanos(se.Created), nanos(se.LastUsed), nanos(se.Expires)); err != nil {
			return fmt.Errorf("sqlite: create session: %w", err)
		}
		return nil
	})
}

const sessionColumns = `id, account, token_hash, device, created, last_used, expires`

func scanSession(sc interface{ Scan(...any) error }) (metastore.Session, error) {
	var (
		se                         metastore.Session
		acct, hash                 []byte
		created, lastUsed, expires sql.NullInt64
	)
	if err := sc.Scan(&se.ID, &acct, &hash, &se.Device, &created, &lastUsed, &expires); err != nil {
		return se, err
	}
	se.Created, se.LastUsed, se.Expires = fromNanos(created), fromNanos(lastUsed), fromNanos(expires)
	if err := setID(se.Account[:], acct, "session account"); err != nil {
		return se, err
	}
	return se, setID(se.TokenHash[:], hash, "session token hash")
}

// SessionByToken implements metastore.Sessions.
func (s *Store) SessionByToken(ctx context.Context, tokenHash [32]byte) (metastore.Session, error) {
	se, err := scanSession(s.rq.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`, tokenHash[:]))
	if err != nil {
		return metastore.Session{}, notFound(err, "session by token")
	}
	return se, nil
}

// TouchSession implements metastore.Sessions (ErrNotFound for an unknown session).
func (s *Store) TouchSession(ctx context.Context, id string, lastUsed, expires time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.wq.in(tx).ExecContext(ctx, `UPDATE sessions SET last_used = ?, expires = ? WHERE id = ?`,
			nanos(lastUsed), nanos(expires), id)
		if err != nil {
			return fmt.Errorf("sqlite: touch session: %w", err)
		}
		if n, err := affected(res); err != nil || n == 0 {
			return cmp(err, fmt.Errorf("sqlite: touch session: %w", coffer.ErrNotFound))
		}
		return nil
	})
}

// ListSessions implements metastore.Sessions (newest Created first).
func (s *Store) ListSessions(ctx context.Context, acct coffer.AccountID) ([]metastore.Session, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE account = ?
		ORDER BY created DESC, id DESC`, acct[:])
	if err != nil {
		return nil, fmt.Errorf("sqlite: list sessions: %w", err)
	}
	defer rows.Close()
	var out []metastore.Session
	for rows.Next() {
		se, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list sessions: %w", err)
		}
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list sessions: %w", err)
	}
	return out, nil
}

// DeleteSession implements metastore.Sessions.
func (s *Store) DeleteSession(ctx context.Context, acct coffer.AccountID, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := s.wq.in(tx).ExecContext(ctx, `DELETE FROM sessions WHERE id = ? AND account = ?`, id, acct[:])
		if err != nil {
			return fmt.Errorf("sqlite: delete session: %w", err)
		}
		if n, err := affected(res); err != nil || n == 0 {
			return cmp(err, fmt.Errorf("sqlite: delete session: %w", coffer.ErrNotFound))
		}
		return nil
	})
}

// DeleteSessions implements metastore.Sessions.
func (s *Store) DeleteSessions(ctx context.Context, acct coffer.AccountID, keep string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := s.wq.in(tx).ExecContext(ctx, `DELETE FROM sessions WHERE account = ? AND id != ?`, acct[:], keep); err != nil {
			return fmt.Errorf("sqlite: delete sessions: %w", err)
		}
		return nil
	})
}
