package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
	"coffer/internal/metastore"
)

// exists reports whether query (which selects one row by its arguments) finds a row.
func exists(ctx context.Context, tx pgx.Tx, what, query string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap(what, err)
	}
	return true, nil
}

// CreateAccount implements metastore.Accounts. The first commit must be version 1 of a.Tree,
// owned by a.ID (ErrInvalid otherwise); a tree ID already in use is ErrExist.
func (s *Store) CreateAccount(ctx context.Context, a metastore.Account, invite string, first metastore.Commit) (coffer.Seq, error) {
	switch {
	case a.Username == "":
		return 0, fmt.Errorf("postgres: create account: empty username: %w", coffer.ErrInvalid)
	case a.Quota < 0:
		return 0, fmt.Errorf("postgres: create account: negative quota %d: %w", a.Quota, coffer.ErrInvalid)
	case first.Owner != a.ID || first.Tree != a.Tree:
		return 0, fmt.Errorf("postgres: create account: first commit is not for the account's tree: %w", coffer.ErrInvalid)
	case first.BaseVersion != 0 || first.Version != 1:
		return 0, fmt.Errorf("postgres: create account: first commit has version %d on base %d, want 1 on 0: %w",
			first.Version, first.BaseVersion, coffer.ErrInvalid)
	}
	bgen, err := i64("bundle generation", a.BundleGeneration)
	if err != nil {
		return 0, err
	}
	const what = "create account"
	var seq coffer.Seq
	err = s.write(ctx, what, func(tx pgx.Tx) error {
		// These checks give clear errors; the unique constraints (unique violation: ErrExist)
		// settle races between concurrent sign-ups.
		if ok, err := exists(ctx, tx, what, `SELECT 1 FROM accounts WHERE id = $1`, a.ID[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("postgres: create account: id %s: %w", a.ID, coffer.ErrExist))
		}
		if ok, err := exists(ctx, tx, what, `SELECT 1 FROM accounts WHERE username = $1`, a.Username); err != nil || ok {
			return cmp(err, fmt.Errorf("postgres: create account: username taken: %w", coffer.ErrExist))
		}
		if ok, err := exists(ctx, tx, what, `SELECT 1 FROM trees WHERE id = $1`, a.Tree[:]); err != nil || ok {
			return cmp(err, fmt.Errorf("postgres: create account: tree %s: %w", a.Tree, coffer.ErrExist))
		}
		if invite != "" {
			ct, err := tx.Exec(ctx, `UPDATE invites SET used_by = $1, used_at = now() WHERE code = $2 AND used_by IS NULL`,
				a.ID[:], invite)
			if err != nil {
				return wrap("create account: use invite", err)
			}
			if ct.RowsAffected() != 1 {
				return fmt.Errorf("postgres: create account: invite unknown or already used: %w", coffer.ErrNotFound)
			}
		}
		c := a.Credentials
		if _, err := tx.Exec(ctx, `INSERT INTO accounts (id, username, created, kdf, login_key, master_key,
				recovery_login_key, recovery_master_key, bundle, bundle_gen, public_keys, tree, quota)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			a.ID[:], a.Username, ts(a.Created), c.KDF, c.LoginKey, c.MasterKey, c.RecoveryLoginKey,
			c.RecoveryMasterKey, a.Bundle, bgen, a.PublicKeys, a.Tree[:], a.Quota); err != nil {
			return wrap(what, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO usage (account) VALUES ($1)`, a.ID[:]); err != nil {
			return wrap(what, err)
		}
		var err error
		seq, err = s.commitTx(ctx, tx, first)
		if errors.Is(err, coffer.ErrConflict) {
			// Only a concurrent creation of the same tree makes a first commit conflict.
			return fmt.Errorf("postgres: create account: tree %s: %w", a.Tree, coffer.ErrExist)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

const accountColumns = `id, username, created, kdf, login_key, master_key, recovery_login_key,
	recovery_master_key, bundle, bundle_gen, public_keys, tree, quota`

func scanAccount(row pgx.Row) (metastore.Account, error) {
	var (
		a              metastore.Account
		rawID, rawTree []byte
		created        pgtype.Timestamptz
		gen            int64
		c              = &a.Credentials
	)
	if err := row.Scan(&rawID, &a.Username, &created, &c.KDF, &c.LoginKey, &c.MasterKey, &c.RecoveryLoginKey,
		&c.RecoveryMasterKey, &a.Bundle, &gen, &a.PublicKeys, &rawTree, &a.Quota); err != nil {
		return a, err
	}
	a.Created = fromTS(created)
	a.BundleGeneration = uint64(gen)
	if err := setID(a.ID[:], rawID, "account id"); err != nil {
		return a, err
	}
	return a, setID(a.Tree[:], rawTree, "tree id")
}

// Account implements metastore.Accounts.
func (s *Store) Account(ctx context.Context, id coffer.AccountID) (metastore.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`, id[:]))
	if err != nil {
		return metastore.Account{}, notFound(err, "account "+id.String())
	}
	return a, nil
}

// AccountByName implements metastore.Accounts. Names match exactly (byte for byte).
func (s *Store) AccountByName(ctx context.Context, username string) (metastore.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = $1`, username))
	if err != nil {
		return metastore.Account{}, notFound(err, "account by name")
	}
	return a, nil
}

// SetCredentials implements metastore.Accounts (ErrNotFound for an unknown account).
func (s *Store) SetCredentials(ctx context.Context, id coffer.AccountID, c metastore.Credentials) error {
	ct, err := s.pool.Exec(ctx, `UPDATE accounts SET kdf = $1, login_key = $2, master_key = $3,
		recovery_login_key = $4, recovery_master_key = $5 WHERE id = $6`,
		c.KDF, c.LoginKey, c.MasterKey, c.RecoveryLoginKey, c.RecoveryMasterKey, id[:])
	if err != nil {
		return wrap("set credentials", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set credentials: account %s: %w", id, coffer.ErrNotFound)
	}
	return nil
}

// SetBundle implements metastore.Accounts: ErrInvalid if newGen <= oldGen, ErrNotFound for an
// unknown account, ErrConflict if the stored generation is not oldGen.
func (s *Store) SetBundle(ctx context.Context, id coffer.AccountID, oldGen, newGen uint64, bundle, publicKeys []byte) error {
	if newGen <= oldGen {
		return fmt.Errorf("postgres: set bundle: new generation %d not above %d: %w", newGen, oldGen, coffer.ErrInvalid)
	}
	o, err := i64("bundle generation", oldGen)
	if err != nil {
		return err
	}
	n, err := i64("bundle generation", newGen)
	if err != nil {
		return err
	}
	ct, err := s.pool.Exec(ctx, `UPDATE accounts SET bundle = $1, bundle_gen = $2, public_keys = $3
		WHERE id = $4 AND bundle_gen = $5`, bundle, n, publicKeys, id[:], o)
	if err != nil {
		return wrap("set bundle", err)
	}
	if ct.RowsAffected() == 1 {
		return nil
	}
	var cur int64
	if err := s.pool.QueryRow(ctx, `SELECT bundle_gen FROM accounts WHERE id = $1`, id[:]).Scan(&cur); err != nil {
		return notFound(err, "set bundle: account "+id.String())
	}
	return fmt.Errorf("postgres: set bundle: stored generation is %d, not %d: %w", cur, o, coffer.ErrConflict)
}

// CreateInvite implements metastore.Accounts.
func (s *Store) CreateInvite(ctx context.Context, code string, created time.Time) error {
	if code == "" {
		return fmt.Errorf("postgres: create invite: empty code: %w", coffer.ErrInvalid)
	}
	ct, err := s.pool.Exec(ctx, `INSERT INTO invites (code, created) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING`,
		code, ts(created))
	if err != nil {
		return wrap("create invite", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create invite: %w", coffer.ErrExist)
	}
	return nil
}

// LoginFailures implements metastore.Accounts: an unknown key has 0 failures and a zero time.
func (s *Store) LoginFailures(ctx context.Context, key string) (int, time.Time, error) {
	var (
		n    int
		last pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT n, last FROM login_failures WHERE key = $1`, key).Scan(&n, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, wrap("login failures", err)
	}
	return n, fromTS(last), nil
}

// SetLoginFailures implements metastore.Accounts (ErrInvalid for n < 0).
func (s *Store) SetLoginFailures(ctx context.Context, key string, n int, last time.Time) error {
	if n < 0 || n > 1<<31-1 {
		return fmt.Errorf("postgres: set login failures: count %d out of range: %w", n, coffer.ErrInvalid)
	}
	var err error
	if n == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO login_failures (key, n, last) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET n = excluded.n, last = excluded.last`, key, n, ts(last))
	}
	return wrap("set login failures", err)
}

// ---- sessions ----

// CreateSession implements metastore.Sessions: ErrExist if the ID or token hash is in use,
// ErrNotFound if the account does not exist.
func (s *Store) CreateSession(ctx context.Context, se metastore.Session) error {
	if se.ID == "" {
		return fmt.Errorf("postgres: create session: empty id: %w", coffer.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (id, account, token_hash, device, created, last_used, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, se.ID, se.Account[:], se.TokenHash[:], se.Device,
		ts(se.Created), ts(se.LastUsed), ts(se.Expires))
	if isCode(err, "23503") { // foreign_key_violation: no such account
		return fmt.Errorf("postgres: create session: account %s: %w", se.Account, coffer.ErrNotFound)
	}
	return wrap("create session", err) // a unique violation (id or token hash) is ErrExist
}

const sessionColumns = `id, account, token_hash, device, created, last_used, expires`

func scanSession(row pgx.Row) (metastore.Session, error) {
	var (
		se                         metastore.Session
		acct, hash                 []byte
		created, lastUsed, expires pgtype.Timestamptz
	)
	if err := row.Scan(&se.ID, &acct, &hash, &se.Device, &created, &lastUsed, &expires); err != nil {
		return se, err
	}
	se.Created, se.LastUsed, se.Expires = fromTS(created), fromTS(lastUsed), fromTS(expires)
	if err := setID(se.Account[:], acct, "session account"); err != nil {
		return se, err
	}
	return se, setID(se.TokenHash[:], hash, "session token hash")
}

// SessionByToken implements metastore.Sessions.
func (s *Store) SessionByToken(ctx context.Context, tokenHash [32]byte) (metastore.Session, error) {
	se, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = $1`, tokenHash[:]))
	if err != nil {
		return metastore.Session{}, notFound(err, "session by token")
	}
	return se, nil
}

// TouchSession implements metastore.Sessions (ErrNotFound for an unknown session).
func (s *Store) TouchSession(ctx context.Context, id string, lastUsed, expires time.Time) error {
	ct, err := s.pool.Exec(ctx, `UPDATE sessions SET last_used = $1, expires = $2 WHERE id = $3`,
		ts(lastUsed), ts(expires), id)
	if err != nil {
		return wrap("touch session", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("postgres: touch session: %w", coffer.ErrNotFound)
	}
	return nil
}

// ListSessions implements metastore.Sessions (newest Created first).
func (s *Store) ListSessions(ctx context.Context, acct coffer.AccountID) ([]metastore.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE account = $1
		ORDER BY created DESC NULLS LAST, id COLLATE "C" DESC`, acct[:])
	if err != nil {
		return nil, wrap("list sessions", err)
	}
	defer rows.Close()
	var out []metastore.Session
	for rows.Next() {
		se, err := scanSession(rows)
		if err != nil {
			return nil, wrap("list sessions", err)
		}
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list sessions", err)
	}
	return out, nil
}

// DeleteSession implements metastore.Sessions.
func (s *Store) DeleteSession(ctx context.Context, acct coffer.AccountID, id string) error {
	ct, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1 AND account = $2`, id, acct[:])
	if err != nil {
		return wrap("delete session", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete session: %w", coffer.ErrNotFound)
	}
	return nil
}

// DeleteSessions implements metastore.Sessions.
func (s *Store) DeleteSessions(ctx context.Context, acct coffer.AccountID, keep string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE account = $1 AND id <> $2`, acct[:], keep)
	return wrap("delete sessions", err)
}
