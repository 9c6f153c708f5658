package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"

	"coffer"
	"coffer/internal/metastore"
)

// bucketsLen is the size of trees.buckets: 256 bucket hashes of 32 bytes.
const bucketsLen = 256 * 32

// Commit implements metastore.Trees. Besides the contract's errors: ErrInvalid if c.Version is not
// c.BaseVersion+1 or a record does not raise its node's version; ErrForbidden if c.Owner does not
// own the tree; ErrNotFound if the tree is new and c.Owner is not an account.
func (s *Store) Commit(ctx context.Context, c metastore.Commit) (coffer.Seq, error) {
	var seq coffer.Seq
	wctx := context.WithoutCancel(ctx) // a group member's statements must not be interrupted
	err := s.writeGrouped(ctx, func(tx *sql.Tx) error {
		var err error
		seq, err = s.commitTx(wctx, tx, c)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// commitStmts are the statements commitTx runs once per record.
type commitStmts struct {
	blobOwner, getNode, upsertNode, deleteNode, toHistory, trimHistoryBlobs, trimHistory,
	deleteHistory, deleteNodeBlobs, deleteVersionBlobs, insertBlob, addRefs, upsertFolder, deleteFolder *sql.Stmt
}

func prepareCommit(ctx context.Context, tx txStmts) (*commitStmts, func(), error) {
	var st commitStmts
	var all []*sql.Stmt
	closeAll := func() {
		for _, s := range all {
			s.Close()
		}
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&st.blobOwner, `SELECT owner FROM blobs WHERE id = ?`},
		{&st.getNode, `SELECT n.kind, n.version,
				(SELECT COUNT(*) FROM history h WHERE h.tree = n.tree AND h.node = n.node)
			FROM nodes n WHERE n.tree = ? AND n.node = ?`},
		{&st.upsertNode, `INSERT INTO nodes (tree, node, parent, kind, version, hash, record) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tree, node) DO UPDATE SET parent = excluded.parent, kind = excluded.kind,
				version = excluded.version, hash = excluded.hash, record = excluded.record`},
		{&st.deleteNode, `DELETE FROM nodes WHERE tree = ? AND node = ?`},
		{&st.toHistory, `INSERT OR REPLACE INTO history (tree, node, version, kind, hash, record)
			SELECT tree, node, version, kind, hash, record FROM nodes WHERE tree = ? AND node = ?`},
		{&st.trimHistoryBlobs, `DELETE FROM node_blobs WHERE tree = ?1 AND node = ?2 AND version IN
			(SELECT version FROM history WHERE tree = ?1 AND node = ?2 ORDER BY version DESC LIMIT -1 OFFSET ?3)`},
		{&st.trimHistory, `DELETE FROM history WHERE tree = ?1 AND node = ?2 AND version IN
			(SELECT version FROM history WHERE tree = ?1 AND node = ?2 ORDER BY version DESC LIMIT -1 OFFSET ?3)`},
		{&st.deleteHistory, `DELETE FROM history WHERE tree = ? AND node = ?`},
		{&st.deleteNodeBlobs, `DELETE FROM node_blobs WHERE tree = ? AND node = ?`},
		{&st.deleteVersionBlobs, `DELETE FROM node_blobs WHERE tree = ? AND node = ? AND version = ?`},
		{&st.insertBlob, `INSERT OR IGNORE INTO node_blobs (tree, node, version, blob) VALUES (?, ?, ?, ?)`},
		{&st.addRefs, `UPDATE blobs SET refs = refs + ? WHERE id = ?`},
		{&st.upsertFolder, `INSERT INTO folders (tree, folder, bucket, count, root) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tree, folder) DO UPDATE SET count = excluded.count, root = excluded.root`},
		{&st.deleteFolder, `DELETE FROM folders WHERE tree = ? AND folder = ?`},
	} {
		stmt, err := tx.stmt(ctx, p.query)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("sqlite: commit: prepare: %w", err)
		}
		all = append(all, stmt)
		*p.dst = stmt
	}
	return &st, closeAll, nil
}

// commitTx applies c inside tx (see Commit).
func (s *Store) commitTx(ctx context.Context, tx *sql.Tx, c metastore.Commit) (coffer.Seq, error) {
	if c.Version != c.BaseVersion+1 {
		return 0, fmt.Errorf("sqlite: commit: version %d on base %d: %w", c.Version, c.BaseVersion, coffer.ErrInvalid)
	}
	version, err := u64("commit version", c.Version)
	if err != nil {
		return 0, err
	}
	tree := c.Tree[:]

	// Compare and swap on the tree's version.
	var (
		owner, buckets []byte
		cur            int64
	)
	err = s.wq.in(tx).QueryRowContext(ctx, `SELECT owner, version, buckets FROM trees WHERE id = ?`, tree).Scan(&owner, &cur, &buckets)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if c.BaseVersion != 0 {
			return 0, fmt.Errorf("sqlite: commit: tree %s does not exist, base version %d: %w", c.Tree, c.BaseVersion, coffer.ErrConflict)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM accounts WHERE id = ?`, c.Owner[:]); err != nil || !ok {
			return 0, cmp(err, fmt.Errorf("sqlite: commit: owner account %s: %w", c.Owner, coffer.ErrNotFound))
		}
		if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO trees (id, owner, version, head) VALUES (?, ?, 0, x'')`, tree, c.Owner[:]); err != nil {
			return 0, fmt.Errorf("sqlite: commit: create tree: %w", err)
		}
	case err != nil:
		return 0, fmt.Errorf("sqlite: commit: read tree: %w", err)
	case uint64(cur) != c.BaseVersion:
		return 0, fmt.Errorf("sqlite: commit: tree %s is at version %d, not %d: %w", c.Tree, cur, c.BaseVersion, coffer.ErrConflict)
	case !bytes.Equal(owner, c.Owner[:]):
		return 0, fmt.Errorf("sqlite: commit: tree %s is not owned by %s: %w", c.Tree, c.Owner, coffer.ErrForbidden)
	}

	st, closeStmts, err := prepareCommit(ctx, s.wq.in(tx))
	if err != nil {
		return 0, err
	}
	defer closeStmts()

	// Every referenced blob must be in the bookkeeping and the owner's.
	checked := make(map[coffer.BlobID]bool)
	for _, r := range c.Records {
		for _, b := range r.Blobs {
			if checked[b] {
				continue
			}
			checked[b] = true
			var bo []byte
			err := st.blobOwner.QueryRowContext(ctx, b[:]).Scan(&bo)
			if errors.Is(err, sql.ErrNoRows) || err == nil && !bytes.Equal(bo, c.Owner[:]) {
				return 0, fmt.Errorf("sqlite: commit: blob %s is not a stored blob of the owner: %w", b, coffer.ErrNotFound)
			}
			if err != nil {
				return 0, fmt.Errorf("sqlite: commit: check blob: %w", err)
			}
		}
	}

	keep := max(c.KeepVersions, 0)
	olds, err := s.oldNodes(ctx, tx, tree, c.Records)
	if err != nil {
		return 0, err
	}
	refs := make(map[coffer.BlobID]int64)
	for _, r := range c.Records {
		if err := applyRecord(ctx, st, tree, r, keep, olds, refs); err != nil {
			return 0, err
		}
	}
	for b, n := range refs {
		if _, err := st.addRefs.ExecContext(ctx, n, b[:]); err != nil {
			return 0, fmt.Errorf("sqlite: commit: blob %s references: %w", b, err)
		}
	}

	for _, f := range c.Folders {
		var err error
		if f.Count == 0 {
			_, err = st.deleteFolder.ExecContext(ctx, tree, f.Folder[:])
		} else {
			var count int64
			if count, err = u64("folder count", f.Count); err != nil {
				return 0, err
			}
			_, err = st.upsertFolder.ExecContext(ctx, tree, f.Folder[:], int(f.Folder[0]), count, f.Root[:])
		}
		if err != nil {
			return 0, fmt.Errorf("sqlite: commit: folder %s: %w", f.Folder, err)
		}
	}

	if len(c.Buckets) > 0 {
		if len(buckets) != bucketsLen {
			if buckets != nil {
				return 0, fmt.Errorf("sqlite: commit: stored buckets of tree %s have %d bytes: %w", c.Tree, len(buckets), coffer.ErrCorrupt)
			}
			buckets = make([]byte, bucketsLen)
		}
		for b, h := range c.Buckets {
			copy(buckets[int(b)*32:], h[:])
		}
	}
	if _, err := s.wq.in(tx).ExecContext(ctx, `UPDATE trees SET version = ?, head = ?, buckets = ? WHERE id = ?`,
		version, blob(c.Head), buckets, tree); err != nil {
		return 0, fmt.Errorf("sqlite: commit: update head: %w", err)
	}

	var seq int64
	if err := s.wq.in(tx).QueryRowContext(ctx, `INSERT INTO account_seq (account, seq) VALUES (?, 1)
		ON CONFLICT (account) DO UPDATE SET seq = seq + 1 RETURNING seq`, c.Owner[:]).Scan(&seq); err != nil {
		return 0, fmt.Errorf("sqlite: commit: next seq: %w", err)
	}
	if _, err := s.wq.in(tx).ExecContext(ctx, `INSERT INTO changes (account, seq, tree, version, head, ops) VALUES (?, ?, ?, ?, ?, ?)`,
		c.Owner[:], seq, tree, version, blob(c.Head), blob(c.Ops)); err != nil {
		return 0, fmt.Errorf("sqlite: commit: append change: %w", err)
	}
	return coffer.Seq(seq), nil
}

// oldNode is the stored state of a node a commit replaces.
type oldNode struct {
	kind          int
	version, kept int64 // kept: records in its history
}

// oldNodeChunks are the numbers of IDs one oldNodes query asks for (a shorter list is padded
// with its first ID), so only these SQL texts exist and each is prepared once.
var oldNodeChunks = [...]int{64, 8, 1}

// oldNodes reads the stored state of every node recs write, in one query per 64 nodes instead of
// one per record (the writer's transaction is the store's one serial section). It returns nil,
// and applyRecord reads each node itself, if a node appears twice in recs: the second record
// must see the first one's write.
func (s *Store) oldNodes(ctx context.Context, tx *sql.Tx, tree []byte, recs []metastore.CommitRecord) (map[coffer.NodeID]oldNode, error) {
	seen := make(map[coffer.NodeID]bool, len(recs))
	ids := make([]coffer.NodeID, 0, len(recs))
	for _, r := range recs {
		if seen[r.Node.Node] {
			return nil, nil
		}
		seen[r.Node.Node] = true
		if !r.Tombstone {
			ids = append(ids, r.Node.Node)
		}
	}
	out := make(map[coffer.NodeID]oldNode, len(ids))
	for len(ids) > 0 {
		n := oldNodeChunks[0]
		for _, c := range oldNodeChunks {
			if c >= len(ids) {
				n = c
			}
		}
		take := min(n, len(ids))
		args := make([]any, 0, n+1)
		args = append(args, tree)
		for i := range n {
			args = append(args, ids[min(i, take-1)][:])
		}
		ids = ids[take:]
		q := `SELECT n.node, n.kind, n.version,
				(SELECT COUNT(*) FROM history h WHERE h.tree = n.tree AND h.node = n.node)
			FROM nodes n WHERE n.tree = ? AND n.node IN (?` + strings.Repeat(", ?", n-1) + `)`
		rows, err := s.wq.in(tx).QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: commit: read nodes: %w", err)
		}
		for rows.Next() {
			var (
				raw []byte
				id  coffer.NodeID
				o   oldNode
			)
			if err := rows.Scan(&raw, &o.kind, &o.version, &o.kept); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: commit: read nodes: %w", err)
			}
			if err := setID(id[:], raw, "node id"); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = o
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: commit: read nodes: %w", err)
		}
	}
	return out, nil
}

// applyRecord writes one record of a commit. olds, if not nil, holds the stored state of every
// node of the commit (oldNodes); refs counts the node_blobs rows inserted per blob, which the
// caller adds to blobs.refs.
func applyRecord(ctx context.Context, st *commitStmts, tree []byte, r metastore.CommitRecord, keep int,
	olds map[coffer.NodeID]oldNode, refs map[coffer.BlobID]int64) error {
	n := r.Node
	node := n.Node[:]
	fail := func(err error) error { return fmt.Errorf("sqlite: commit: node %s: %w", n.Node, err) }

	if r.Tombstone {
		for _, stmt := range []*sql.Stmt{st.deleteNodeBlobs, st.deleteHistory, st.deleteNode} {
			if _, err := stmt.ExecContext(ctx, tree, node); err != nil {
				return fail(err)
			}
		}
		return nil
	}

	version, err := u64("record version", n.Version)
	if err != nil {
		return err
	}
	var (
		oldKind          int
		oldVersion, kept int64
	)
	if olds != nil {
		o, ok := olds[n.Node]
		if !ok {
			err = sql.ErrNoRows
		}
		oldKind, oldVersion, kept = o.kind, o.version, o.kept
	} else {
		err = st.getNode.QueryRowContext(ctx, tree, node).Scan(&oldKind, &oldVersion, &kept)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail(err)
	case oldVersion >= version:
		return fmt.Errorf("sqlite: commit: node %s: version %d does not follow stored version %d: %w",
			n.Node, version, oldVersion, coffer.ErrInvalid)
	case oldKind == kindFile:
		if keep > 0 {
			if _, err := st.toHistory.ExecContext(ctx, tree, node); err != nil {
				return fail(err)
			}
			kept++
		} else if _, err := st.deleteVersionBlobs.ExecContext(ctx, tree, node, oldVersion); err != nil {
			return fail(err)
		}
		if kept <= int64(keep) {
			break
		}
		if _, err := st.trimHistoryBlobs.ExecContext(ctx, tree, node, keep); err != nil {
			return fail(err)
		}
		if _, err := st.trimHistory.ExecContext(ctx, tree, node, keep); err != nil {
			return fail(err)
		}
	default:
		if _, err := st.deleteVersionBlobs.ExecContext(ctx, tree, node, oldVersion); err != nil {
			return fail(err)
		}
	}
	if _, err := st.upsertNode.ExecContext(ctx, tree, node, n.Parent[:], int(n.Kind), version, n.Hash[:], blob(n.Record)); err != nil {
		return fail(err)
	}
	for _, b := range r.Blobs {
		res, err := st.insertBlob.ExecContext(ctx, tree, node, version, b[:])
		if err != nil {
			return fail(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fail(err)
		}
		refs[b] += n
	}
	return nil
}

// Head implements metastore.Trees.
func (s *Store) Head(ctx context.Context, tree coffer.TreeID) (metastore.Head, error) {
	h := metastore.Head{Tree: tree}
	var (
		owner []byte
		v     int64
	)
	if err := s.rq.QueryRowContext(ctx, `SELECT owner, version, head FROM trees WHERE id = ?`, tree[:]).Scan(&owner, &v, &h.Head); err != nil {
		return metastore.Head{}, notFound(err, "head of tree %s", tree)
	}
	h.Version = uint64(v)
	return h, setID(h.Owner[:], owner, "tree owner")
}

// nodeScanner reads rows of (node, [parent,] kind, version, hash, record). It is allocated once
// per query: its fields are the Scan destinations, so rows do not allocate them again. The
// fixed-size columns are read as sql.RawBytes (not copied by database/sql); the record is copied
// once.
type nodeScanner struct {
	node, parent, hash, record sql.RawBytes
	kind                       int
	version                    int64
	dest                       []any
}

// newNodeScanner returns a scanner for rows with a parent column, or without one (Children,
// where every row's parent is the listed folder).
func newNodeScanner(withParent bool) *nodeScanner {
	ns := &nodeScanner{}
	if withParent {
		ns.dest = []any{&ns.node, &ns.parent, &ns.kind, &ns.version, &ns.hash, &ns.record}
	} else {
		ns.dest = []any{&ns.node, &ns.kind, &ns.version, &ns.hash, &ns.record}
	}
	return ns
}

// scan reads one row; parent is used when the query has no parent column.
func (ns *nodeScanner) scan(r *sql.Rows, parent coffer.NodeID) (metastore.Node, error) {
	n := metastore.Node{Parent: parent}
	if err := r.Scan(ns.dest...); err != nil {
		return n, err
	}
	n.Kind, n.Version = uint8(ns.kind), uint64(ns.version)
	n.Record = make([]byte, len(ns.record))
	copy(n.Record, ns.record)
	if err := setID(n.Node[:], ns.node, "node id"); err != nil {
		return n, err
	}
	if len(ns.dest) == 6 {
		if err := setID(n.Parent[:], ns.parent, "parent id"); err != nil {
			return n, err
		}
	}
	return n, setID(n.Hash[:], ns.hash, "record hash")
}

// Node implements metastore.Trees.
func (s *Store) Node(ctx context.Context, tree coffer.TreeID, node coffer.NodeID) (metastore.Node, error) {
	rows, err := s.nodeQ.QueryContext(ctx, tree[:], node[:])
	if err != nil {
		return metastore.Node{}, fmt.Errorf("sqlite: node: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		n, err := newNodeScanner(true).scan(rows, coffer.NodeID{})
		if err != nil {
			return metastore.Node{}, fmt.Errorf("sqlite: node: %w", err)
		}
		return n, nil
	}
	if err := rows.Err(); err != nil {
		return metastore.Node{}, fmt.Errorf("sqlite: node: %w", err)
	}
	return metastore.Node{}, fmt.Errorf("sqlite: node %s: %w", node, coffer.ErrNotFound)
}

// nodesChunks are the numbers of IDs one Nodes query asks for: a shorter list is padded with
// its first ID, so only these few SQL texts exist and each is prepared once (stmtCache).
var nodesChunks = [...]int{128, 16, 1}

// Nodes implements metastore.Trees.
func (s *Store) Nodes(ctx context.Context, tree coffer.TreeID, ids []coffer.NodeID) (map[coffer.NodeID]metastore.Node, error) {
	out := make(map[coffer.NodeID]metastore.Node, len(ids))
	ns := newNodeScanner(true)
	for len(ids) > 0 {
		n := nodesChunks[0]
		for _, c := range nodesChunks {
			if c >= len(ids) {
				n = c
			}
		}
		take := min(n, len(ids))
		args := make([]any, 0, n+1)
		args = append(args, tree[:])
		for i := range n {
			args = append(args, ids[min(i, take-1)][:])
		}
		ids = ids[take:]
		q := `SELECT node, parent, kind, version, hash, record FROM nodes WHERE tree = ? AND node IN (?` +
			strings.Repeat(", ?", n-1) + `)`
		rows, err := s.rq.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: nodes: %w", err)
		}
		for rows.Next() {
			nd, err := ns.scan(rows, coffer.NodeID{})
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: nodes: %w", err)
			}
			out[nd.Node] = nd
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: nodes: %w", err)
		}
	}
	return out, nil
}

// nodeQuery is Node's query (Store.nodeQ).
const nodeQuery = `SELECT node, parent, kind, version, hash, record FROM nodes WHERE tree = ? AND node = ?`

// rowsSeq streams the rows of a read query through scan; it stops at the first error, which it
// yields. The rows (and their read connection) are released when iteration ends.
func rowsSeq[T any](ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, what string, scan func(*sql.Rows) (T, error), query string, args ...any) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
		}
	}
}

// Children implements metastore.Trees. It streams rows from one read connection.
func (s *Store) Children(ctx context.Context, tree coffer.TreeID, folder coffer.NodeID) iter.Seq2[metastore.Node, error] {
	return func(yield func(metastore.Node, error) bool) {
		ns := newNodeScanner(false)
		rowsSeq(ctx, s.rq, "children", func(r *sql.Rows) (metastore.Node, error) { return ns.scan(r, folder) },
			`SELECT node, kind, version, hash, record FROM nodes WHERE tree = ? AND parent = ? ORDER BY node`,
			tree[:], folder[:])(yield)
	}
}

// Buckets implements metastore.Trees (ErrNotFound for an unknown tree).
func (s *Store) Buckets(ctx context.Context, tree coffer.TreeID) (*[256][32]byte, error) {
	var b []byte
	if err := s.rq.QueryRowContext(ctx, `SELECT buckets FROM trees WHERE id = ?`, tree[:]).Scan(&b); err != nil {
		return nil, notFound(err, "buckets of tree %s", tree)
	}
	out := new([256][32]byte)
	if b == nil {
		return out, nil
	}
	if len(b) != bucketsLen {
		return nil, fmt.Errorf("sqlite: buckets of tree %s: %d bytes stored: %w", tree, len(b), coffer.ErrCorrupt)
	}
	for i := range out {
		copy(out[i][:], b[i*32:])
	}
	return out, nil
}

// Bucket implements metastore.Trees. An unknown tree has empty buckets.
func (s *Store) Bucket(ctx context.Context, tree coffer.TreeID, bucket uint8) ([]metastore.FolderSummary, error) {
	var out []metastore.FolderSummary
	seq := rowsSeq(ctx, s.rq, "bucket", func(r *sql.Rows) (metastore.FolderSummary, error) {
		var (
			f            metastore.FolderSummary
			folder, root []byte
			count        int64
		)
		if err := r.Scan(&folder, &count, &root); err != nil {
			return f, err
		}
		f.Count = uint64(count)
		if err := setID(f.Folder[:], folder, "folder id"); err != nil {
			return f, err
		}
		return f, setID(f.Root[:], root, "folder root")
	}, `SELECT folder, count, root FROM folders WHERE tree = ? AND bucket = ? ORDER BY folder`, tree[:], int(bucket))
	for f, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Versions implements metastore.Trees. A node without kept records (or an unknown node) has none.
func (s *Store) Versions(ctx context.Context, tree coffer.TreeID, node coffer.NodeID) ([][]byte, error) {
	var out [][]byte
	seq := rowsSeq(ctx, s.rq, "versions", func(r *sql.Rows) ([]byte, error) {
		var rec []byte
		return rec, r.Scan(&rec)
	}, `SELECT record FROM history WHERE tree = ? AND node = ? ORDER BY version DESC`, tree[:], node[:])
	for rec, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Changes implements metastore.Trees (ErrInvalid for limit <= 0).
func (s *Store) Changes(ctx context.Context, acct coffer.AccountID, since coffer.Seq, limit int) ([]metastore.ChangeEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlite: changes: limit %d: %w", limit, coffer.ErrInvalid)
	}
	from, err := u64("seq", uint64(since))
	if err != nil {
		return nil, err
	}
	var out []metastore.ChangeEntry
	seq := rowsSeq(ctx, s.rq, "changes", func(r *sql.Rows) (metastore.ChangeEntry, error) {
		var (
			e       metastore.ChangeEntry
			sq, v   int64
			treeRaw []byte
		)
		if err := r.Scan(&sq, &treeRaw, &v, &e.Head, &e.Ops); err != nil {
			return e, err
		}
		e.Seq, e.Version = coffer.Seq(sq), uint64(v)
		return e, setID(e.Tree[:], treeRaw, "change tree")
	}, `SELECT seq, tree, version, head, ops FROM changes WHERE account = ? AND seq > ? ORDER BY seq LIMIT ?`,
		acct[:], from, limit)
	for e, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// LatestSeq implements metastore.Trees.
func (s *Store) LatestSeq(ctx context.Context, acct coffer.AccountID) (coffer.Seq, error) {
	var seq int64
	err := s.rq.QueryRowContext(ctx, `SELECT seq FROM account_seq WHERE account = ?`, acct[:]).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: latest seq: %w", err)
	}
	return coffer.Seq(seq), nil
}

// AllTrees yields every tree's ID in ascending order (for fsck). It is an extension: not (yet)
// part of metastore.Store.
func (s *Store) AllTrees(ctx context.Context) iter.Seq2[coffer.TreeID, error] {
	return rowsSeq(ctx, s.rq, "all trees", func(r *sql.Rows) (coffer.TreeID, error) {
		var (
			id  coffer.TreeID
			raw sql.RawBytes
		)
		if err := r.Scan(&raw); err != nil {
			return id, err
		}
		return id, setID(id[:], raw, "tree id")
	}, `SELECT id FROM trees ORDER BY id`)
}
