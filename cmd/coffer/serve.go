package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"coffer/internal/server"
)

func (a *app) serverCommands() []*cobra.Command {
	return []*cobra.Command{a.serveCmd(), a.adminCmd()}
}

// defaultDataDir is COFFER_DATA, else the OS user data directory + /coffer
// (~/.local/share/coffer, ~/Library/Application Support/coffer, %LocalAppData%\coffer).
func defaultDataDir() string {
	if d := os.Getenv("COFFER_DATA"); d != "" {
		return d
	}
	return osDataDir()
}

// osDataDir is the OS user data directory + /coffer.
func osDataDir() string {
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "coffer")
		}
	case "darwin", "ios":
		if home != "" {
			return filepath.Join(home, "Library", "Application Support", "coffer")
		}
	default:
		if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
			return filepath.Join(d, "coffer")
		}
		if home != "" {
			return filepath.Join(home, ".local", "share", "coffer")
		}
	}
	return "coffer-data"
}

// dataDirFlag adds --data to c.
func dataDirFlag(c *cobra.Command, dst *string) {
	c.Flags().StringVar(dst, "data", "", "server data directory (env COFFER_DATA; default "+shortHome(osDataDir())+")")
}

// shortHome abbreviates the home directory as ~ for help texts.
func shortHome(p string) string {
	if home, err := os.UserHomeDir(); err == nil && home != "" && strings.HasPrefix(p, home+string(filepath.Separator)) {
		return "~" + p[len(home):]
	}
	return p
}

// storeFlags adds --db and --blobs to c.
func storeFlags(c *cobra.Command, db, blobs *string) {
	c.Flags().StringVar(db, "db", "", "metadata store: a SQLite file path, sqlite:PATH or postgres://… (env COFFER_DB; default DATA/meta.db)")
	if blobs != nil {
		c.Flags().StringVar(blobs, "blobs", "", "blob store: a directory, file:PATH or s3://bucket/prefix?endpoint=host:port&region=…&insecure=1 (env COFFER_BLOBS; default DATA)")
	}
}

// storeConfig resolves the store flags of an admin command (after --config was applied).
func storeConfig(dataDir, db, blobs string) server.StoreConfig {
	if dataDir == "" {
		dataDir = defaultDataDir()
	}
	return server.StoreConfig{DataDir: dataDir, DB: envOr(db, "COFFER_DB"), Blobs: envOr(blobs, "COFFER_BLOBS")}
}

func (a *app) serveCmd() *cobra.Command {
	var (
		dataDir, listen, cert, key, quota string
		db, blobs, configFile             string
		metricsListen                     string
		inviteOnly                        bool
		keepVersions, maxActive           int
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Coffer server",
		Long: `Run the Coffer server: metadata in SQLite (DATA/meta.db), blobs on disk (DATA/blobs). With no flags it
just works: data in the OS user data directory, listening on 127.0.0.1:8420 (put a TLS-terminating
proxy in front, or give --tls-cert and --tls-key, before exposing it). SIGINT or SIGTERM shuts it
down gracefully (in-flight requests finish). Logs are JSON lines on stderr.

To grow beyond one machine, put the metadata in PostgreSQL (--db postgres://…) and the blobs in
S3 (--blobs s3://…; credentials from COFFER_S3_ACCESS_KEY/COFFER_S3_SECRET_KEY or the AWS_*
variables, never in the URL) and run as many nodes as needed behind a load balancer: with
PostgreSQL the nodes share change notifications (LISTEN/NOTIFY), login challenges, blob locks
and the server secret through the database. GET /metrics serves Prometheus metrics, GET /readyz
checks both stores (use --metrics-listen to keep metrics off the public address). See
doc/SCALING.md.

` + configFileHelp,
		Example: "  coffer serve\n  coffer serve --data /srv/coffer --listen 0.0.0.0:8420 --tls-cert cert.pem --tls-key key.pem\n" +
			"  coffer serve --invite-only --quota 10GiB --keep-versions 20\n" +
			"  coffer serve --db postgres://coffer@db/coffer --blobs 's3://coffer-blobs/prod?region=eu-central-1'\n" +
			"  coffer serve --config /etc/coffer/server.conf",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.kind = kindServe
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return err
				}
			}
			if dataDir == "" {
				dataDir = defaultDataDir()
			}
			db, blobs = envOr(db, "COFFER_DB"), envOr(blobs, "COFFER_BLOBS")
			if _, _, err := server.ParseDBURL(db); err != nil {
				return usagef("--db: %w", err)
			}
			if listen == "" {
				listen = os.Getenv("COFFER_LISTEN")
			}
			if listen == "" {
				listen = server.DefaultListen
			}
			if (cert == "") != (key == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			var q int64
			if quota != "" {
				var err error
				if q, err = parseSize(quota); err != nil {
					return usagef("--quota: %w", err)
				}
			}
			if keepVersions < 0 {
				return usagef("--keep-versions: must not be negative, got %d", keepVersions)
			}
			err := server.Serve(cmd.Context(), server.ServeConfig{
				DataDir: dataDir, DB: db, Blobs: blobs, Listen: listen, TLSCert: cert, TLSKey: key, MetricsListen: metricsListen,
				InviteOnly: inviteOnly, DefaultQuota: q, KeepVersions: keepVersions, MaxActive: maxActive,
				Logger: slog.New(slog.NewJSONHandler(a.stderr, nil)),
				OnListen: func(url string) {
					fmt.Fprintf(a.stderr, "coffer: serving on %s\n", url)
				},
			})
			return err
		},
	}
	dataDirFlag(c, &dataDir)
	c.Flags().StringVar(&listen, "listen", "", "TCP address to listen on (env COFFER_LISTEN; default "+server.DefaultListen+")")
	c.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	c.Flags().StringVar(&key, "tls-key", "", "TLS private key file (PEM)")
	c.Flags().BoolVar(&inviteOnly, "invite-only", false, "sign-up needs an invite code from 'coffer admin invite'")
	c.Flags().StringVar(&quota, "quota", "", "per-account storage quota: BYTES or e.g. 500MiB, 10GiB, 1TB (default unlimited)")
	c.Flags().IntVar(&keepVersions, "keep-versions", server.DefaultKeepVersions, "older versions kept per file")
	c.Flags().IntVar(&maxActive, "max-active", 0, "API requests run at once; more wait in a queue, commits first (default 8 per CPU; -1: no limit)")
	storeFlags(c, &db, &blobs)
	c.Flags().StringVar(&metricsListen, "metrics-listen", "", "serve GET /metrics only on this separate address (plain HTTP; keep it private) instead of the main one")
	c.Flags().StringVar(&configFile, "config", "", "read settings from this key=value file (see above)")
	return c
}

func (a *app) adminCmd() *cobra.Command {
	var dataDir, db, blobs, configFile string
	invite := &cobra.Command{
		Use:     "invite",
		Short:   "Create a single-use invite code",
		Long:    "Create a single-use sign-up invite code (for servers run with --invite-only) and print it. Works while the server runs.",
		Example: "  coffer admin invite --data /srv/coffer",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.kind = kindAdmin
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return err
				}
			}
			code, err := server.CreateInviteIn(cmd.Context(), storeConfig(dataDir, db, ""))
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, code)
			return nil
		},
	}
	dataDirFlag(invite, &dataDir)
	storeFlags(invite, &db, nil)
	invite.Flags().StringVar(&configFile, "config", "", "read --data and --db from serve's key=value config file")
	fsck := &cobra.Command{
		Use:   "fsck",
		Short: "Check the server's stores",
		Long: `Check the server's stores: every blob exists with its recorded size and CRC-32C (the one the
server verified at upload; SHA-256 = ID for a blob recorded before it kept CRC-32Cs), every blob file is
accounted for, every record parses, every tree's state recomputes to its signed head. Problems are
reported, never repaired. Run it while the server is stopped. Exit status 0: clean; 1: problems found.`,
		Example: "  coffer admin fsck --data /srv/coffer",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.kind = kindAdmin
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return err
				}
			}
			n, err := server.FsckIn(cmd.Context(), storeConfig(dataDir, db, blobs), a.stdout)
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%s found", plural(n, "problem"))
			}
			return nil
		},
	}
	dataDirFlag(fsck, &dataDir)
	storeFlags(fsck, &db, &blobs)
	fsck.Flags().StringVar(&configFile, "config", "", "read --data, --db and --blobs from serve's key=value config file")
	c := &cobra.Command{
		Use:     "admin",
		Short:   "Server administration: invites, store checks, migration between stores",
		Example: "  coffer admin invite\n  coffer admin fsck\n  coffer admin migrate --from-db /srv/coffer/meta.db --from-blobs /srv/coffer --to-db postgres://… --to-blobs s3://…",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.AddCommand(invite, fsck, a.migrateCmd())
	return c
}

// parseSize parses a byte count: plain bytes ("1048576") or a number with a unit: KiB, MiB, GiB,
// TiB (powers of 1024; K, M, G, T and KB... are accepted too: K/M/G/T are 1024-based, KB/MB/GB/TB
// 1000-based). Fractions are allowed with units ("1.5GiB").
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 || num == "" {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("size %q: bad number", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, errors.New("size " + strconv.Quote(s) + ": too large")
	}
	return int64(v), nil
}
