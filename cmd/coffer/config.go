package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// serverEnv maps server flag names to the environment variables that set them. A flag given on
// the command line wins over its variable, which wins over the --config file.
var serverEnv = map[string]string{
	"data":   "COFFER_DATA",
	"listen": "COFFER_LISTEN",
	"db":     "COFFER_DB",
	"blobs":  "COFFER_BLOBS",
}

// serveKeys are the keys of serve's config file; admin commands reading the same file ignore the
// ones they do not use.
var serveKeys = []string{"data", "db", "blobs", "listen", "metrics-listen", "tls-cert", "tls-key", "invite-only", "quota", "keep-versions", "max-active"}

// configFileHelp documents --config for the commands that take it.
const configFileHelp = `The --config file holds "key = value" lines whose keys are the command's long flag names
(data, db, blobs, listen, metrics-listen, tls-cert, tls-key, invite-only, quota, keep-versions,
max-active);
blank lines and lines starting with # are ignored; values are taken literally (no quotes, no
escapes). Command-line flags win over environment variables, which win over the file. The file
may hold a database password: keep it mode 0600.`

// applyConfigFile sets every flag of c named in the key=value file at path that is neither on
// the command line nor set through its environment variable. Errors name the file and line.
func applyConfigFile(c *cobra.Command, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("--config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(c.ErrOrStderr(), "coffer: warning: %s is readable by other users; it may hold a database password (chmod 600 it)\n", path)
	}
	sc := bufio.NewScanner(f)
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return usagef("--config %s line %d: want key = value", path, n)
		}
		fl := c.LocalNonPersistentFlags().Lookup(key)
		if fl == nil && slices.Contains(serveKeys, key) {
			continue // a serve setting this admin command does not use
		}
		if fl == nil || key == "config" || key == "help" {
			return usagef("--config %s line %d: unknown key %q (known: %s)", path, n, key, strings.Join(configKeys(c), ", "))
		}
		if prev, dup := seen[key]; dup {
			return usagef("--config %s line %d: %q already set on line %d", path, n, key, prev)
		}
		seen[key] = n
		if fl.Changed {
			continue
		}
		if env := serverEnv[key]; env != "" && os.Getenv(env) != "" {
			continue
		}
		if err := c.Flags().Set(key, value); err != nil {
			return usagef("--config %s line %d: %s: %w", path, n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	return nil
}

// configKeys lists the flags a config file may set.
func configKeys(c *cobra.Command) []string {
	var keys []string
	c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && f.Name != "help" {
			keys = append(keys, f.Name)
		}
	})
	slices.Sort(keys)
	return keys
}

// envOr returns v, or the environment variable's value when v is empty.
func envOr(v, env string) string {
	if v == "" {
		return os.Getenv(env)
	}
	return v
}
