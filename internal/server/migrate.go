package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coffer"
	"coffer/internal/blobstore"
	"coffer/internal/metastore"
)

// TableCopier is the optional metadata-store capability that Migrate needs; both the sqlite and
// the postgres store implement it. Rows are []any in a fixed column order per table, with
// values []byte (nil: NULL), string, int64 (nil: NULL, in a nullable integer column) or time.Time
// (zero: NULL); the stores' copy.go files define the tables and columns identically.
type TableCopier interface {
	// ExportTable calls fn with every row of table (fn must not keep the slice).
	ExportTable(ctx context.Context, table string, fn func(row []any) error) error
	// ImportRows inserts rows in one transaction, skipping rows that collide with existing ones
	// on a unique key, and returns how many it inserted.
	ImportRows(ctx context.Context, table string, rows [][]any) (int64, error)
}

// MigrateTables are the tables Migrate copies, in an order that satisfies foreign keys. Sessions
// and login-failure counters are dropped on purpose: users log in again after a migration.
var MigrateTables = []string{
	"accounts", "usage", "invites", "trees", "nodes", "history",
	"blobs", "node_blobs", "folders", "changes", "account_seq", "links", "drops", "drop_blobs",
	"rosters", "members",
}

// migrateBatch is the number of rows per import transaction.
const migrateBatch = 500

// MigrateConfig configures Migrate.
type MigrateConfig struct {
	From, To StoreConfig
	// Progress receives human-readable progress lines (nil: discard).
	Progress io.Writer
	// Report receives the verification's problem lines and summary (nil: Progress).
	Report io.Writer
	// Workers is the number of blobs copied in parallel (default 4).
	Workers int
	Logger  *slog.Logger
}

// Migrate copies everything a server stores from one pair of stores to another (e.g. SQLite and
// disk to PostgreSQL and S3): blob bytes first (streamed; each blob's bytes are checked against
// its recorded CRC-32C as they are written, or for a blob recorded without one its SHA-256
// against its ID first), then every table of MigrateTables. It is
// resumable: blobs already present with the right size and rows already present are skipped, so
// an interrupted run can simply be started again. It ends with a verification pass: per table,
// row counts and an order-independent digest of the rows must match between source and
// destination, and the destination must pass the fsck checks (every blob read back and checked,
// every tree's state recomputed to its signed head). It returns the number of problems found.
//
// Run it while no server uses either side. The destination's server secret is not copied: with a
// data directory it has its own server.secret, with PostgreSQL the cluster's shared secret.
func Migrate(ctx context.Context, cfg MigrateConfig) (problems int, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	report := cfg.Report
	if report == nil {
		report = progress
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	cfg.From.Cluster, cfg.To.Cluster = false, false
	cfg.From.Logger, cfg.To.Logger = cfg.Logger, cfg.Logger
	if cfg.From.DB == "" || cfg.To.DB == "" {
		// Opening a default store would create an empty one where a path was mistyped.
		return 0, errors.New("server: migrate: both the source and the destination database must be given")
	}
	if cfg.From.Blobs == "" || cfg.To.Blobs == "" {
		return 0, errors.New("server: migrate: both the source and the destination blob store must be given")
	}
	// A mistyped source path must not become an empty store that migrates "successfully".
	if kind, loc, err := ParseDBURL(cfg.From.DB); err == nil && kind == "sqlite" {
		if _, err := os.Stat(loc); err != nil {
			return 0, fmt.Errorf("server: migrate: source database: %w", err)
		}
	}
	if dir, ok := strings.CutPrefix(cfg.From.Blobs, "file:"); ok || !strings.Contains(cfg.From.Blobs, "://") {
		if !ok {
			dir = cfg.From.Blobs
		}
		if _, err := os.Stat(filepath.Join(strings.TrimPrefix(dir, "//"), "blobs")); err != nil {
			return 0, fmt.Errorf("server: migrate: source blob store: %w", err)
		}
	}
	src, err := OpenStores(ctx, cfg.From)
	if err != nil {
		return 0, fmt.Errorf("server: migrate: source: %w", err)
	}
	defer src.Close()
	dst, err := OpenStores(ctx, cfg.To)
	if err != nil {
		return 0, fmt.Errorf("server: migrate: destination: %w", err)
	}
	defer dst.Close()
	if src.DB == dst.DB {
		return 0, fmt.Errorf("server: migrate: source and destination are the same database (%s)", src.DB)
	}
	sc, ok1 := src.Meta.(TableCopier)
	dc, ok2 := dst.Meta.(TableCopier)
	if !ok1 || !ok2 {
		return 0, errors.New("server: migrate: a metadata store cannot export or import tables")
	}
	fmt.Fprintf(progress, "migrate: from %s + %s\nmigrate: to   %s + %s\n", src.DB, src.BlobsDesc, dst.DB, dst.BlobsDesc)

	if err := copyBlobs(ctx, src, dst, cfg.Workers, progress); err != nil {
		return 0, err
	}
	for _, table := range MigrateTables {
		if err := copyTable(ctx, table, sc, dc, progress); err != nil {
			return 0, err
		}
	}
	fmt.Fprintln(progress, "migrate: verifying")
	for _, table := range MigrateTables {
		sn, sd, err := tableDigest(ctx, sc, table)
		if err != nil {
			return problems, fmt.Errorf("server: migrate: verify %s: %w", table, err)
		}
		dn, dd, err := tableDigest(ctx, dc, table)
		if err != nil {
			return problems, fmt.Errorf("server: migrate: verify %s: %w", table, err)
		}
		switch {
		case sn != dn:
			problems++
			fmt.Fprintf(report, "problem: table %s: %d rows in the source, %d in the destination\n", table, sn, dn)
		case sd != dd:
			problems++
			fmt.Fprintf(report, "problem: table %s: %d rows each, but their contents differ\n", table, sn)
		default:
			fmt.Fprintf(progress, "migrate: verified %s: %d rows\n", table, sn)
		}
	}
	n, err := FsckStores(ctx, dst.Meta, dst.Blobs, report)
	problems += n
	if err != nil {
		return problems, fmt.Errorf("server: migrate: verify destination: %w", err)
	}
	return problems, nil
}

// copyBlobs copies the bytes of every recorded blob the destination lacks.
func copyBlobs(ctx context.Context, src, dst *Stores, workers int, progress io.Writer) error {
	var infos []metastore.BlobInfo
	var total int64
	for b, err := range src.Meta.AllBlobs(ctx) {
		if err != nil {
			return fmt.Errorf("server: migrate: list blobs: %w", err)
		}
		infos = append(infos, b)
		total += b.Size
	}
	fmt.Fprintf(progress, "migrate: blobs: %d (%s)\n", len(infos), humanBytes(total))
	var (
		done, skipped atomic.Int64
		missing       atomic.Int64
		bytes         atomic.Int64
		firstErr      error
		mu            sync.Mutex
		wg            sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan metastore.BlobInfo)
	for range workers {
		wg.Go(func() {
			for b := range jobs {
				copied, err := copyBlob(ctx, src.Blobs, dst.Blobs, b)
				if errors.Is(err, errMissingBlob) {
					missing.Add(1)
					fmt.Fprintf(progress, "migrate: blob %v is missing in the source; not copied (the verification will report it)\n", b.ID)
					continue
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				if !copied {
					skipped.Add(1)
				}
				bytes.Add(b.Size)
				done.Add(1)
			}
		})
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	line := func() {
		fmt.Fprintf(progress, "migrate: blobs: %d/%d (%s/%s), %d already present, %d missing\n",
			done.Load()+missing.Load(), len(infos), humanBytes(bytes.Load()), humanBytes(total), skipped.Load(), missing.Load())
	}
feed:
	for _, b := range infos {
		for {
			select {
			case jobs <- b:
				continue feed
			case <-tick.C:
				line()
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("server: migrate: %w", err)
	}
	line()
	return nil
}

// errMissingBlob is a recorded blob whose bytes the source lacks: not copied, and reported by the
// final fsck of the destination.
var errMissingBlob = errors.New("missing in the source")

// copyBlob copies one blob unless the destination has it with the right size already. Stores do
// not hash what they store; a corrupt source blob is an error wrapping coffer.ErrCorrupt and
// nothing is stored. A blob recorded with a CRC-32C is streamed once, under that CRC, which the
// destination checks as it writes. One recorded without a CRC-32C is read twice: first to check
// that its SHA-256 is its ID and compute its CRC-32C, then to copy it under that CRC.
func copyBlob(ctx context.Context, from, to blobstore.Store, b metastore.BlobInfo) (bool, error) {
	if n, err := to.Stat(ctx, b.ID); err == nil && n == b.Size {
		return false, nil
	} else if err == nil {
		// Something else is stored under the ID (stores never replace a blob): remove it.
		if err := to.Delete(ctx, b.ID); err != nil {
			return false, fmt.Errorf("server: migrate: blob %v: destination: %w", b.ID, err)
		}
	} else if !errors.Is(err, coffer.ErrNotFound) {
		return false, fmt.Errorf("server: migrate: blob %v: destination: %w", b.ID, err)
	}
	crc := b.CRC32C
	if !b.HasCRC {
		h, c := sha256.New(), crc32.New(blobstore.CRC32C)
		if err := readBlob(ctx, from, b.ID, io.MultiWriter(h, c)); err != nil {
			return false, err
		}
		if coffer.BlobID(h.Sum(nil)) != b.ID {
			return false, fmt.Errorf("server: migrate: blob %v: the source's bytes do not hash to the ID: %w", b.ID, coffer.ErrCorrupt)
		}
		crc = c.Sum32()
	}
	rc, err := from.Get(ctx, b.ID, 0, -1)
	if errors.Is(err, coffer.ErrNotFound) {
		return false, errMissingBlob
	}
	if err != nil {
		return false, fmt.Errorf("server: migrate: blob %v: source: %w", b.ID, err)
	}
	defer rc.Close()
	if _, err := to.Put(ctx, b.ID, rc, b.Size, crc); err != nil {
		if b.HasCRC && errors.Is(err, coffer.ErrCorrupt) {
			return false, fmt.Errorf("server: migrate: blob %v: the source's bytes do not match the recorded size and CRC-32C: %w", b.ID, err)
		}
		return false, fmt.Errorf("server: migrate: blob %v: %w", b.ID, err)
	}
	return true, nil
}

// readBlob copies a whole blob of from into w; errMissingBlob if from lacks it.
func readBlob(ctx context.Context, from blobstore.Store, id coffer.BlobID, w io.Writer) error {
	rc, err := from.Get(ctx, id, 0, -1)
	if errors.Is(err, coffer.ErrNotFound) {
		return errMissingBlob
	}
	if err != nil {
		return fmt.Errorf("server: migrate: blob %v: source: %w", id, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("server: migrate: blob %v: source: %w", id, err)
	}
	return nil
}

// copyTable streams table from src into dst in batches.
func copyTable(ctx context.Context, table string, src, dst TableCopier, progress io.Writer) error {
	var (
		batch          [][]any
		read, inserted int64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := dst.ImportRows(ctx, table, batch)
		if err != nil {
			return err
		}
		inserted += n
		batch = batch[:0]
		return nil
	}
	err := src.ExportTable(ctx, table, func(row []any) error {
		batch = append(batch, append([]any(nil), row...))
		read++
		if len(batch) >= migrateBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("server: migrate: table %s: %w", table, err)
	}
	fmt.Fprintf(progress, "migrate: table %s: %d rows, %d copied, %d already present\n", table, read, inserted, read-inserted)
	return nil
}

// tableDigest returns the row count and an order-independent digest of table: the sum, lane by
// lane modulo 2^64, of each row's SHA-256 over a canonical encoding. NULL and empty bytes encode
// alike, and times are taken to the microsecond (PostgreSQL's resolution).
func tableDigest(ctx context.Context, c TableCopier, table string) (int64, [4]uint64, error) {
	var (
		n   int64
		sum [4]uint64
		buf []byte
	)
	err := c.ExportTable(ctx, table, func(row []any) error {
		buf = buf[:0]
		for _, v := range row {
			switch v := v.(type) {
			case nil:
				buf = append(buf, 'b', 0, 0, 0, 0)
			case []byte:
				buf = append(buf, 'b')
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
				buf = append(buf, v...)
			case string:
				buf = append(buf, 's')
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
				buf = append(buf, v...)
			case int64:
				buf = append(buf, 'i')
				buf = binary.BigEndian.AppendUint64(buf, uint64(v))
			case time.Time:
				buf = append(buf, 't')
				var us int64
				if !v.IsZero() {
					us = v.UnixMicro()
				}
				buf = binary.BigEndian.AppendUint64(buf, uint64(us))
			default:
				return fmt.Errorf("unexpected value of type %T", v)
			}
		}
		h := sha256.Sum256(buf)
		for i := range sum {
			sum[i] += binary.BigEndian.Uint64(h[8*i:])
		}
		n++
		return nil
	})
	return n, sum, err
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
