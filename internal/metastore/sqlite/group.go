package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// maxGroup bounds the writes one group transaction applies.
const maxGroup = 64

// Group commit. SQLite has one writer, and every write transaction ends with an fsync of the WAL.
// Under load the writes queue for the write connection, and each hand-over between request
// goroutines costs scheduling delay on a busy machine. writeGrouped lets the first waiting writer
// (the leader) apply every write queued behind it in ONE transaction: each in its own savepoint,
// so a write that fails is rolled back alone and gets its own error, while the others commit
// together with one fsync. No write is acknowledged before that commit returned, so durability is
// unchanged: a write that returned nil survives a crash.
type groupReq struct {
	fn   func(tx *sql.Tx) error
	err  error
	done chan struct{} // closed once err is final
}

// lockWriter takes the write connection (waiters are served in arrival order) or returns ctx's
// error.
func (s *Store) lockWriter(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sqlite: begin: %w", ctx.Err())
	}
}

func (s *Store) unlockWriter() { <-s.wsem }

// writeGrouped runs fn in a write transaction that may be shared with other writeGrouped calls,
// and returns once that transaction committed (nil) or fn's or the transaction's error.
//
// fn's statements MUST run with a context that does not end (context.WithoutCancel): a statement
// interrupted by its context makes SQLite roll back the whole transaction, every other write of
// the group with it. ctx only bounds the wait before fn starts; once started, fn runs to the end.
func (s *Store) writeGrouped(ctx context.Context, fn func(tx *sql.Tx) error) error {
	req := &groupReq{fn: fn, done: make(chan struct{})}
	s.gmu.Lock()
	s.gqueue = append(s.gqueue, req)
	s.gmu.Unlock()
	for {
		select {
		case <-req.done: // served by a group (checked first: no need to lead another)
			return req.err
		default:
		}
		select {
		case <-req.done:
			return req.err
		case s.wsem <- struct{}{}:
			s.leadGroup()
			s.unlockWriter()
		case <-ctx.Done():
			s.gmu.Lock()
			if i := slices.Index(s.gqueue, req); i >= 0 {
				s.gqueue = slices.Delete(s.gqueue, i, i+1)
				s.gmu.Unlock()
				return fmt.Errorf("sqlite: begin: %w", ctx.Err())
			}
			s.gmu.Unlock()
			<-req.done // a leader has taken it: it runs to the end
			return req.err
		}
	}
}

// leadGroup applies the queued writes (up to maxGroup) in one transaction. The caller holds the
// write connection.
func (s *Store) leadGroup() {
	s.gmu.Lock()
	n := min(len(s.gqueue), maxGroup)
	batch := slices.Clone(s.gqueue[:n])
	s.gqueue = slices.Delete(s.gqueue, 0, n)
	s.gmu.Unlock()
	if n == 0 {
		return
	}
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	bg := context.Background()
	abort := func(tx *sql.Tx, err error) {
		if tx != nil {
			tx.Rollback()
		}
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
		}
	}
	s.groups.Add(1)
	tx, err := s.w.BeginTx(bg, nil)
	if err != nil {
		abort(nil, fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	if n == 1 {
		if batch[0].err = batch[0].fn(tx); batch[0].err != nil {
			tx.Rollback()
			return
		}
	} else {
		for _, r := range batch {
			if _, err := tx.ExecContext(bg, `SAVEPOINT g`); err != nil {
				abort(tx, fmt.Errorf("sqlite: group: savepoint: %w", err))
				return
			}
			if r.err = r.fn(tx); r.err != nil {
				if _, err := tx.ExecContext(bg, `ROLLBACK TO g`); err != nil {
					abort(tx, fmt.Errorf("sqlite: group: rollback to savepoint: %w", errors.Join(err, r.err)))
					return
				}
			}
			if _, err := tx.ExecContext(bg, `RELEASE g`); err != nil {
				abort(tx, fmt.Errorf("sqlite: group: release savepoint: %w", err))
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		abort(nil, fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	s.wq.preparePending(bg)
}
