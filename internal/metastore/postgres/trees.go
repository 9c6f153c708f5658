package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"coffer"
	"coffer/internal/metastore"
)

// bucketsLen is the size of trees.buckets: 256 bucket hashes of 32 bytes.
const bucketsLen = 256 * 32

// Commit implements metastore.Trees. Besides the contract's errors: ErrInvalid if c.Version is not
// c.BaseVersion+1 or a record does not raise its node's version; ErrForbidden if c.Owner does not
// own the tree; ErrNotFound if the tree is new and c.Owner is not an account.
//
// It runs in one transaction of a handful of round trips whatever the number of records: the
// records are written with set-based statements (unnest of arrays), sent as one pipelined batch.
func (s *Store) Commit(ctx context.Context, c metastore.Commit) (coffer.Seq, error) {
	var seq coffer.Seq
	err := s.write(ctx, "commit", func(tx pgx.Tx) error {
		var err error
		seq, err = s.commitTx(ctx, tx, c)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// commitTx applies c inside tx (see Commit).
func (s *Store) commitTx(ctx context.Context, tx pgx.Tx, c metastore.Commit) (coffer.Seq, error) {
	if c.Version != c.BaseVersion+1 {
		return 0, fmt.Errorf("postgres: commit: version %d on base %d: %w", c.Version, c.BaseVersion, coffer.ErrInvalid)
	}
	version, err := i64("commit version", c.Version)
	if err != nil {
		return 0, err
	}
	for _, r := range c.Records {
		if _, err := i64("record version", r.Node.Version); err != nil {
			return 0, err
		}
	}
	tree := c.Tree[:]

	chunks := distinctChunks(c.Records)
	var (
		seq     int64
		olds    map[coffer.NodeID]oldNode // the first chunk's stored nodes, when read in the first batch
		buckets []byte
	)
	if c.BaseVersion == 0 {
		// A new tree (or a conflict): the statements one by one.
		var err error
		if buckets, err = lockTree(ctx, tx, c); err != nil {
			return 0, err
		}
		if err := tx.QueryRow(ctx, nextSeqSQL, c.Owner[:]).Scan(&seq); err != nil {
			return 0, wrap("commit: next seq", err)
		}
		if err := checkBlobs(ctx, tx, c); err != nil {
			return 0, err
		}
	} else {
		// The usual case, an existing tree: the reads that decide the commit go in ONE round trip
		// (a pipelined batch, run in this order): the tree's row lock and version check, the
		// owner's next feed position, the blob check and the first chunk's stored nodes.
		// An error a callback returns is final (checked and wrapped there); any other is the
		// batch's own.
		var cbErr error
		cb := func(err error) error {
			if cbErr == nil {
				cbErr = err
			}
			return err
		}
		b := &pgx.Batch{}
		b.Queue(lockTreeSQL, tree).QueryRow(func(r pgx.Row) error {
			var (
				owner []byte
				cur   int64
			)
			err := r.Scan(&owner, &cur, &buckets)
			if errors.Is(err, pgx.ErrNoRows) {
				return cb(fmt.Errorf("postgres: commit: tree %s does not exist, base version %d: %w", c.Tree, c.BaseVersion, coffer.ErrConflict))
			}
			if err != nil {
				return cb(wrap("commit: read tree", err))
			}
			return cb(checkTree(c, owner, cur))
		})
		b.Queue(nextSeqSQL, c.Owner[:]).QueryRow(func(r pgx.Row) error { return cb(wrap("commit: next seq", r.Scan(&seq))) })
		if ids := blobIDs(c); len(ids) > 0 {
			b.Queue(checkBlobsSQL, ids).Query(func(rows pgx.Rows) error { return cb(scanBlobCheck(rows, c, len(ids))) })
		}
		if len(chunks) > 0 {
			olds = make(map[coffer.NodeID]oldNode)
			b.Queue(readNodesSQL, tree, nodeIDs(chunks[0])).Query(func(rows pgx.Rows) error { return cb(scanOldNodes(rows, olds)) })
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			if cbErr != nil {
				return 0, cbErr
			}
			return 0, wrap("commit: read", err)
		}
	}

	keep := max(c.KeepVersions, 0)
	for i, chunk := range chunks {
		var pre map[coffer.NodeID]oldNode
		if i == 0 {
			pre = olds
		}
		b, err := recordBatch(ctx, tx, tree, chunk, keep, pre)
		if err != nil {
			return 0, err
		}
		if i == len(chunks)-1 {
			if err := queueTail(b, c, tree, version, buckets, seq); err != nil {
				return 0, err
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, wrap("commit: write records", err)
		}
	}
	if len(chunks) == 0 {
		b := &pgx.Batch{}
		if err := queueTail(b, c, tree, version, buckets, seq); err != nil {
			return 0, err
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, wrap("commit: write head", err)
		}
	}
	return coffer.Seq(seq), nil
}

// SQL of the statements that begin a commit.
const (
	// lockTreeSQL reads the tree under its row lock: a concurrent commit on the same tree waits
	// here and then sees the winner's version (compare and swap on the version).
	lockTreeSQL = `SELECT owner, version, buckets FROM trees WHERE id = $1 FOR UPDATE`
	// nextSeqSQL takes the owner's next feed position. Its row lock serialises the owner's commits
	// on all trees, so two commits never update the same blobs' reference counts at once (no
	// deadlocks).
	nextSeqSQL = `INSERT INTO account_seq (account, seq) VALUES ($1, 1)
		ON CONFLICT (account) DO UPDATE SET seq = account_seq.seq + 1 RETURNING seq`
	// checkBlobsSQL locks the referenced blobs' rows (FOR KEY SHARE) until the commit ends: a
	// garbage collection that has not yet chosen them skips them, and one that has makes this
	// wait and then find them gone (ErrNotFound).
	checkBlobsSQL = `SELECT id, owner FROM blobs WHERE id = ANY($1) FOR KEY SHARE`
	// readNodesSQL reads the stored state of the nodes a chunk of records replaces.
	readNodesSQL = `SELECT n.node, n.kind, n.version,
			(SELECT count(*) FROM history h WHERE h.tree = n.tree AND h.node = n.node)
		FROM nodes n WHERE n.tree = $1 AND n.node = ANY($2)`
)

// lockTree reads and locks c's tree, creating it for a first commit (BaseVersion 0), and checks
// the compare and swap; it returns the tree's stored buckets.
func lockTree(ctx context.Context, tx pgx.Tx, c metastore.Commit) (buckets []byte, err error) {
	tree := c.Tree[:]
	var (
		owner []byte
		cur   int64
	)
	err = tx.QueryRow(ctx, lockTreeSQL, tree).Scan(&owner, &cur, &buckets)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if c.BaseVersion != 0 {
			return nil, fmt.Errorf("postgres: commit: tree %s does not exist, base version %d: %w", c.Tree, c.BaseVersion, coffer.ErrConflict)
		}
		if ok, err := exists(ctx, tx, "commit: owner", `SELECT 1 FROM accounts WHERE id = $1`, c.Owner[:]); err != nil || !ok {
			return nil, cmp(err, fmt.Errorf("postgres: commit: owner account %s: %w", c.Owner, coffer.ErrNotFound))
		}
		// A concurrent first commit of the same tree makes this wait, then insert nothing.
		ct, err := tx.Exec(ctx, `INSERT INTO trees (id, owner, version, head) VALUES ($1, $2, 0, '')
			ON CONFLICT (id) DO NOTHING`, tree, c.Owner[:])
		if err != nil {
			return nil, wrap("commit: create tree", err)
		}
		if ct.RowsAffected() == 0 {
			return nil, fmt.Errorf("postgres: commit: tree %s was created concurrently: %w", c.Tree, coffer.ErrConflict)
		}
		return nil, nil
	case err != nil:
		return nil, wrap("commit: read tree", err)
	}
	return buckets, checkTree(c, owner, cur)
}

// checkTree checks an existing tree's version (cur) and owner against c.
func checkTree(c metastore.Commit, owner []byte, cur int64) error {
	switch {
	case uint64(cur) != c.BaseVersion:
		return fmt.Errorf("postgres: commit: tree %s is at version %d, not %d: %w", c.Tree, cur, c.BaseVersion, coffer.ErrConflict)
	case !bytes.Equal(owner, c.Owner[:]):
		return fmt.Errorf("postgres: commit: tree %s is not owned by %s: %w", c.Tree, c.Owner, coffer.ErrForbidden)
	}
	return nil
}

// blobIDs returns the distinct blobs c references.
func blobIDs(c metastore.Commit) [][]byte {
	seen := make(map[coffer.BlobID]bool)
	var ids [][]byte
	for _, r := range c.Records {
		for _, b := range r.Blobs {
			if !seen[b] {
				seen[b] = true
				ids = append(ids, b[:])
			}
		}
	}
	return ids
}

// checkBlobs checks that every blob c references is in the bookkeeping and c.Owner's, and locks
// those rows (checkBlobsSQL).
func checkBlobs(ctx context.Context, tx pgx.Tx, c metastore.Commit) error {
	ids := blobIDs(c)
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, checkBlobsSQL, ids)
	if err != nil {
		return wrap("commit: check blobs", err)
	}
	return scanBlobCheck(rows, c, len(ids))
}

// scanBlobCheck reads the answer of checkBlobsSQL for want distinct blobs and closes rows.
func scanBlobCheck(rows pgx.Rows, c metastore.Commit, want int) error {
	defer rows.Close()
	found := 0
	for rows.Next() {
		var id, owner pgtype.DriverBytes
		if err := rows.Scan(&id, &owner); err != nil {
			return wrap("commit: check blobs", err)
		}
		if !bytes.Equal(owner, c.Owner[:]) {
			return fmt.Errorf("postgres: commit: blob %x is not a stored blob of the owner: %w", []byte(id), coffer.ErrNotFound)
		}
		found++
	}
	if err := rows.Err(); err != nil {
		return wrap("commit: check blobs", err)
	}
	if found != want {
		return fmt.Errorf("postgres: commit: %d of the %d referenced blobs are not stored blobs of the owner: %w",
			want-found, want, coffer.ErrNotFound)
	}
	return nil
}

// nodeIDs returns the node IDs of chunk.
func nodeIDs(chunk []metastore.CommitRecord) [][]byte {
	ids := make([][]byte, len(chunk))
	for i := range chunk {
		ids[i] = chunk[i].Node.Node[:]
	}
	return ids
}

// scanOldNodes reads the answer of readNodesSQL into old and closes rows.
func scanOldNodes(rows pgx.Rows, old map[coffer.NodeID]oldNode) error {
	defer rows.Close()
	for rows.Next() {
		var (
			raw pgtype.DriverBytes
			id  coffer.NodeID
			o   oldNode
		)
		if err := rows.Scan(&raw, &o.kind, &o.version, &o.kept); err != nil {
			return wrap("commit: read nodes", err)
		}
		if err := setID(id[:], raw, "node id"); err != nil {
			return err
		}
		old[id] = o
	}
	return wrap("commit: read nodes", rows.Err())
}

// distinctChunks splits records, in order, into runs in which no node appears twice, so each
// run can be written with set-based statements and still mean the same as applying the records
// one after the other.
func distinctChunks(recs []metastore.CommitRecord) [][]metastore.CommitRecord {
	var out [][]metastore.CommitRecord
	in := make(map[coffer.NodeID]bool)
	start := 0
	for i, r := range recs {
		if in[r.Node.Node] {
			out = append(out, recs[start:i])
			clear(in)
			start = i
		}
		in[r.Node.Node] = true
	}
	if start < len(recs) {
		out = append(out, recs[start:])
	}
	return out
}

// nodeBlob is one blob reference of one record.
type nodeBlob struct {
	node coffer.NodeID
	blob coffer.BlobID
}

// oldNode is the stored state of a node a commit replaces.
type oldNode struct {
	kind    int16
	version int64
	kept    int64 // records in its history
}

// recordBatch reads the stored state of chunk's nodes (unless pre holds it already) and returns
// the batch of statements that writes chunk (see applyRecord in the sqlite store for the same
// logic, one record at a time).
func recordBatch(ctx context.Context, tx pgx.Tx, tree []byte, chunk []metastore.CommitRecord, keep int,
	pre map[coffer.NodeID]oldNode) (*pgx.Batch, error) {
	old := pre
	if old == nil {
		old = make(map[coffer.NodeID]oldNode)
		rows, err := tx.Query(ctx, readNodesSQL, tree, nodeIDs(chunk))
		if err != nil {
			return nil, wrap("commit: read nodes", err)
		}
		if err := scanOldNodes(rows, old); err != nil {
			return nil, err
		}
	}

	var (
		tomb, toHist, trim       [][]byte
		dropNodes                [][]byte // (node, version) whose blob references go
		dropVersions             []int64
		upNode, upParent, upHash [][]byte
		upRecord                 [][]byte
		upKind                   []int16
		upVersion                []int64
		refNode, refBlob         [][]byte
		refVersion               []int64
		seenRef                  = make(map[nodeBlob]bool)
	)
	for _, r := range chunk {
		n := r.Node
		node := n.Node[:]
		if r.Tombstone {
			tomb = append(tomb, node)
			continue
		}
		v := int64(n.Version) // checked by commitTx
		if o, ok := old[n.Node]; ok {
			switch {
			case o.version >= v:
				return nil, fmt.Errorf("postgres: commit: node %s: version %d does not follow stored version %d: %w",
					n.Node, v, o.version, coffer.ErrInvalid)
			case o.kind == int16(kindFile):
				kept := o.kept
				if keep > 0 {
					toHist = append(toHist, node)
					kept++
				} else {
					dropNodes, dropVersions = append(dropNodes, node), append(dropVersions, o.version)
				}
				if kept > int64(keep) {
					trim = append(trim, node)
				}
			default:
				dropNodes, dropVersions = append(dropNodes, node), append(dropVersions, o.version)
			}
		}
		upNode, upParent, upHash = append(upNode, node), append(upParent, n.Parent[:]), append(upHash, n.Hash[:])
		upRecord, upKind, upVersion = append(upRecord, blob(n.Record)), append(upKind, int16(n.Kind)), append(upVersion, v)
		for _, b := range r.Blobs {
			if k := (nodeBlob{n.Node, b}); !seenRef[k] {
				seenRef[k] = true
				refNode, refVersion, refBlob = append(refNode, node), append(refVersion, v), append(refBlob, b[:])
			}
		}
	}

	b := &pgx.Batch{}
	if len(tomb) > 0 {
		// A tombstoned node loses its live record, its history and their blob references.
		b.Queue(`DELETE FROM node_blobs WHERE tree = $1 AND node = ANY($2)`, tree, tomb)
		b.Queue(`DELETE FROM history WHERE tree = $1 AND node = ANY($2)`, tree, tomb)
		b.Queue(`DELETE FROM nodes WHERE tree = $1 AND node = ANY($2)`, tree, tomb)
	}
	if len(toHist) > 0 {
		// The replaced record (and, unchanged, its blob references) moves to the history.
		b.Queue(`INSERT INTO history (tree, node, version, kind, hash, record)
			SELECT tree, node, version, kind, hash, record FROM nodes WHERE tree = $1 AND node = ANY($2)
			ON CONFLICT (tree, node, version) DO UPDATE SET kind = excluded.kind, hash = excluded.hash,
				record = excluded.record`, tree, toHist)
	}
	if len(dropNodes) > 0 {
		b.Queue(`DELETE FROM node_blobs nb USING unnest($2::bytea[], $3::bigint[]) AS d(node, version)
			WHERE nb.tree = $1 AND nb.node = d.node AND nb.version = d.version`, tree, dropNodes, dropVersions)
	}
	if len(trim) > 0 {
		// Keep the newest keep records of each node's history; drop the rest and their references.
		b.Queue(`WITH ranked AS (
				SELECT node, version, row_number() OVER (PARTITION BY node ORDER BY version DESC) AS rn
				FROM history WHERE tree = $1 AND node = ANY($2)
			), gone AS (
				DELETE FROM history h USING ranked r
				WHERE h.tree = $1 AND h.node = r.node AND h.version = r.version AND r.rn > $3
				RETURNING h.node, h.version
			)
			DELETE FROM node_blobs nb USING gone g WHERE nb.tree = $1 AND nb.node = g.node AND nb.version = g.version`,
			tree, trim, int64(keep))
	}
	if len(upNode) > 0 {
		b.Queue(`INSERT INTO nodes (tree, node, parent, kind, version, hash, record)
			SELECT $1, * FROM unnest($2::bytea[], $3::bytea[], $4::smallint[], $5::bigint[], $6::bytea[], $7::bytea[])
			ON CONFLICT (tree, node) DO UPDATE SET parent = excluded.parent, kind = excluded.kind,
				version = excluded.version, hash = excluded.hash, record = excluded.record`,
			tree, upNode, upParent, upKind, upVersion, upHash, upRecord)
	}
	if len(refNode) > 0 {
		b.Queue(`INSERT INTO node_blobs (tree, node, version, blob)
			SELECT $1, * FROM unnest($2::bytea[], $3::bigint[], $4::bytea[]) ON CONFLICT DO NOTHING`,
			tree, refNode, refVersion, refBlob)
	}
	return b, nil
}

// queueTail queues the statements that end a commit: folder summaries, bucket hashes, the head
// and the change-feed entry.
func queueTail(b *pgx.Batch, c metastore.Commit, tree []byte, version int64, buckets []byte, seq int64) error {
	// Later summaries of the same folder win, as if applied one by one.
	last := make(map[coffer.NodeID]int, len(c.Folders))
	for i, f := range c.Folders {
		last[f.Folder] = i
	}
	var (
		del, upFolder, upRoot [][]byte
		upBucket              []int16
		upCount               []int64
	)
	for i, f := range c.Folders {
		if last[f.Folder] != i {
			continue
		}
		if f.Count == 0 {
			del = append(del, f.Folder[:])
			continue
		}
		count, err := i64("folder count", f.Count)
		if err != nil {
			return err
		}
		upFolder, upRoot = append(upFolder, f.Folder[:]), append(upRoot, f.Root[:])
		upBucket, upCount = append(upBucket, int16(f.Folder[0])), append(upCount, count)
	}
	if len(del) > 0 {
		b.Queue(`DELETE FROM folders WHERE tree = $1 AND folder = ANY($2)`, tree, del)
	}
	if len(upFolder) > 0 {
		b.Queue(`INSERT INTO folders (tree, folder, bucket, count, root)
			SELECT $1, * FROM unnest($2::bytea[], $3::smallint[], $4::bigint[], $5::bytea[])
			ON CONFLICT (tree, folder) DO UPDATE SET count = excluded.count, root = excluded.root`,
			tree, upFolder, upBucket, upCount, upRoot)
	}

	if len(c.Buckets) > 0 {
		if len(buckets) != bucketsLen {
			if buckets != nil {
				return fmt.Errorf("postgres: commit: stored buckets of tree %s have %d bytes: %w", c.Tree, len(buckets), coffer.ErrCorrupt)
			}
			buckets = make([]byte, bucketsLen)
		}
		for k, h := range c.Buckets {
			copy(buckets[int(k)*32:], h[:])
		}
		b.Queue(`UPDATE trees SET version = $2, head = $3, buckets = $4 WHERE id = $1`, tree, version, blob(c.Head), buckets)
	} else {
		b.Queue(`UPDATE trees SET version = $2, head = $3 WHERE id = $1`, tree, version, blob(c.Head))
	}
	b.Queue(`INSERT INTO changes (account, seq, tree, version, head, ops) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.Owner[:], seq, tree, version, blob(c.Head), blob(c.Ops))
	return nil
}

// Head implements metastore.Trees.
func (s *Store) Head(ctx context.Context, tree coffer.TreeID) (metastore.Head, error) {
	h := metastore.Head{Tree: tree}
	var (
		owner []byte
		v     int64
	)
	if err := s.pool.QueryRow(ctx, `SELECT owner, version, head FROM trees WHERE id = $1`, tree[:]).Scan(&owner, &v, &h.Head); err != nil {
		return metastore.Head{}, notFound(err, "head of tree "+tree.String())
	}
	h.Version = uint64(v)
	return h, setID(h.Owner[:], owner, "tree owner")
}

// nodeScanner reads rows of (node, [parent,] kind, version, hash, record). Its fields are the
// Scan destinations, allocated once per query; the fixed-size columns are read without a copy
// (pgtype.DriverBytes) and the record is copied once.
type nodeScanner struct {
	node, parent, hash pgtype.DriverBytes
	record             []byte
	kind               int16
	version            int64
	dest               []any
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
func (ns *nodeScanner) scan(r pgx.Rows, parent coffer.NodeID) (metastore.Node, error) {
	n := metastore.Node{Parent: parent}
	ns.record = nil // Scan allocates a fresh slice for every row's record
	if err := r.Scan(ns.dest...); err != nil {
		return n, err
	}
	n.Kind, n.Version, n.Record = uint8(ns.kind), uint64(ns.version), ns.record
	if n.Record == nil {
		n.Record = []byte{}
	}
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
	ns := newNodeScanner(true)
	for n, err := range rowsSeq(ctx, s.pool, "node", func(r pgx.Rows) (metastore.Node, error) { return ns.scan(r, coffer.NodeID{}) },
		`SELECT node, parent, kind, version, hash, record FROM nodes WHERE tree = $1 AND node = $2`, tree[:], node[:]) {
		return n, err
	}
	return metastore.Node{}, fmt.Errorf("postgres: node %s: %w", node, coffer.ErrNotFound)
}

// maxNodesPerQuery bounds the IDs of one Nodes query.
const maxNodesPerQuery = 1000

// Nodes implements metastore.Trees.
func (s *Store) Nodes(ctx context.Context, tree coffer.TreeID, ids []coffer.NodeID) (map[coffer.NodeID]metastore.Node, error) {
	out := make(map[coffer.NodeID]metastore.Node, len(ids))
	ns := newNodeScanner(true)
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxNodesPerQuery)]
		ids = ids[len(chunk):]
		raw := make([][]byte, len(chunk))
		for i := range chunk {
			raw[i] = chunk[i][:]
		}
		for n, err := range rowsSeq(ctx, s.pool, "nodes", func(r pgx.Rows) (metastore.Node, error) { return ns.scan(r, coffer.NodeID{}) },
			`SELECT node, parent, kind, version, hash, record FROM nodes WHERE tree = $1 AND node = ANY($2)`, tree[:], raw) {
			if err != nil {
				return nil, err
			}
			out[n.Node] = n
		}
	}
	return out, nil
}

// querier is what rowsSeq needs of a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// rowsSeq streams the rows of a read query through scan; it stops at the first error, which it
// yields. pgx reads rows from the connection as they are consumed, so memory stays bounded
// whatever the result's size. The connection returns to the pool when iteration ends (after
// the rest of the result, if the caller stopped early, has been read and discarded).
func rowsSeq[T any](ctx context.Context, q querier, what string, scan func(pgx.Rows) (T, error), query string, args ...any) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			yield(zero, wrap(what, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				yield(zero, wrap(what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, wrap(what, err))
		}
	}
}

// Children implements metastore.Trees, streaming rows from one connection.
func (s *Store) Children(ctx context.Context, tree coffer.TreeID, folder coffer.NodeID) iter.Seq2[metastore.Node, error] {
	return func(yield func(metastore.Node, error) bool) {
		ns := newNodeScanner(false)
		rowsSeq(ctx, s.pool, "children", func(r pgx.Rows) (metastore.Node, error) { return ns.scan(r, folder) },
			`SELECT node, kind, version, hash, record FROM nodes WHERE tree = $1 AND parent = $2 ORDER BY node`,
			tree[:], folder[:])(yield)
	}
}

// Buckets implements metastore.Trees (ErrNotFound for an unknown tree).
func (s *Store) Buckets(ctx context.Context, tree coffer.TreeID) (*[256][32]byte, error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, `SELECT buckets FROM trees WHERE id = $1`, tree[:]).Scan(&b); err != nil {
		return nil, notFound(err, "buckets of tree "+tree.String())
	}
	out := new([256][32]byte)
	if b == nil {
		return out, nil
	}
	if len(b) != bucketsLen {
		return nil, fmt.Errorf("postgres: buckets of tree %s: %d bytes stored: %w", tree, len(b), coffer.ErrCorrupt)
	}
	for i := range out {
		copy(out[i][:], b[i*32:])
	}
	return out, nil
}

// Bucket implements metastore.Trees. An unknown tree has empty buckets.
func (s *Store) Bucket(ctx context.Context, tree coffer.TreeID, bucket uint8) ([]metastore.FolderSummary, error) {
	var out []metastore.FolderSummary
	seq := rowsSeq(ctx, s.pool, "bucket", func(r pgx.Rows) (metastore.FolderSummary, error) {
		var (
			f            metastore.FolderSummary
			folder, root pgtype.DriverBytes
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
	}, `SELECT folder, count, root FROM folders WHERE tree = $1 AND bucket = $2 ORDER BY folder`, tree[:], int16(bucket))
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
	seq := rowsSeq(ctx, s.pool, "versions", func(r pgx.Rows) ([]byte, error) {
		var rec []byte
		return rec, r.Scan(&rec)
	}, `SELECT record FROM history WHERE tree = $1 AND node = $2 ORDER BY version DESC`, tree[:], node[:])
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
		return nil, fmt.Errorf("postgres: changes: limit %d: %w", limit, coffer.ErrInvalid)
	}
	from, err := i64("seq", uint64(since))
	if err != nil {
		return nil, err
	}
	var out []metastore.ChangeEntry
	seq := rowsSeq(ctx, s.pool, "changes", func(r pgx.Rows) (metastore.ChangeEntry, error) {
		var (
			e       metastore.ChangeEntry
			sq, v   int64
			treeRaw pgtype.DriverBytes
		)
		if err := r.Scan(&sq, &treeRaw, &v, &e.Head, &e.Ops); err != nil {
			return e, err
		}
		e.Seq, e.Version = coffer.Seq(sq), uint64(v)
		return e, setID(e.Tree[:], treeRaw, "change tree")
	}, `SELECT seq, tree, version, head, ops FROM changes WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		acct[:], from, int64(limit))
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
	err := s.pool.QueryRow(ctx, `SELECT seq FROM account_seq WHERE account = $1`, acct[:]).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("latest seq", err)
	}
	return coffer.Seq(seq), nil
}

// AllTrees implements metastore.Trees: every tree's ID in ascending order, streamed.
func (s *Store) AllTrees(ctx context.Context) iter.Seq2[coffer.TreeID, error] {
	return rowsSeq(ctx, s.pool, "all trees", func(r pgx.Rows) (coffer.TreeID, error) {
		var (
			id  coffer.TreeID
			raw pgtype.DriverBytes
		)
		if err := r.Scan(&raw); err != nil {
			return id, err
		}
		return id, setID(id[:], raw, "tree id")
	}, `SELECT id FROM trees ORDER BY id`)
}
