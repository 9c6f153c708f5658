package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"coffer/internal/server"
)

func (a *app) migrateCmd() *cobra.Command {
	var fromDB, fromBlobs, toDB, toBlobs string
	var workers int
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Copy a server's data to other stores (e.g. SQLite and disk to PostgreSQL and S3)",
		Long: `Copy everything a server stores to another pair of stores: accounts, invites, trees with all their
records and kept versions, folder summaries, buckets, heads, the change feed, public links, blob
bookkeeping and the blob bytes (streamed; the destination checks each blob against its recorded
CRC-32C as it is written; a blob recorded without one is first checked by SHA-256 against its ID).
Sessions are not copied: users log in again afterwards.

It is resumable: blobs and rows already present in the destination are skipped, so after an
interruption run the same command again. It ends with a verification pass (row counts and row
digests per table, then the fsck checks on the destination, which read back and check every blob).
Progress goes to stderr, problems to stdout. Stop every server using either side first.

Store values are as for serve --db and --blobs: a SQLite file path or sqlite:PATH or
postgres://…; a directory or file:PATH or s3://bucket/prefix?endpoint=…&region=…&insecure=1.
Exit status 0: copied and verified; 1: problems found or the copy failed.`,
		Example: "  coffer admin migrate --from-db /srv/coffer/meta.db --from-blobs /srv/coffer \\\n" +
			"      --to-db postgres://coffer@db/coffer --to-blobs 's3://coffer-blobs/prod?region=eu-central-1'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.kind = kindAdmin
			for _, f := range []struct{ name, v string }{
				{"--from-db", fromDB}, {"--from-blobs", fromBlobs}, {"--to-db", toDB}, {"--to-blobs", toBlobs},
			} {
				if f.v == "" {
					return usagef("%s is required", f.name)
				}
			}
			if workers < 1 {
				return usagef("--workers: must be at least 1, got %d", workers)
			}
			for _, db := range []string{fromDB, toDB} {
				if _, _, err := server.ParseDBURL(db); err != nil {
					return usagef("%w", err)
				}
			}
			n, err := server.Migrate(cmd.Context(), server.MigrateConfig{
				From:     server.StoreConfig{DB: fromDB, Blobs: fromBlobs},
				To:       server.StoreConfig{DB: toDB, Blobs: toBlobs},
				Progress: a.stderr,
				Report:   a.stdout,
				Workers:  workers,
				Logger:   slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%s found", plural(n, "problem"))
			}
			fmt.Fprintln(a.stderr, "migrate: done: copied and verified")
			return nil
		},
	}
	c.Flags().StringVar(&fromDB, "from-db", "", "source metadata store")
	c.Flags().StringVar(&fromBlobs, "from-blobs", "", "source blob store")
	c.Flags().StringVar(&toDB, "to-db", "", "destination metadata store (created or completed)")
	c.Flags().StringVar(&toBlobs, "to-blobs", "", "destination blob store")
	c.Flags().IntVar(&workers, "workers", 4, "blobs copied in parallel")
	return c
}
