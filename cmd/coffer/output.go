package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"coffer"
	"coffer/client"
)

// printJSON writes v as indented JSON on stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// entryJSON is the --json form of a remote file or folder (ls, stat, tree, trash ls).
type entryJSON struct {
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	Type        string    `json:"type"` // "file" or "folder"
	ID          string    `json:"id"`
	Size        int64     `json:"size"`
	MTime       time.Time `json:"mtime"`
	Mode        string    `json:"mode"` // octal permission bits, e.g. "0644"
	Version     uint64    `json:"version"`
	SHA256      string    `json:"sha256,omitempty"` // files: plaintext SHA-256, hex
	TrashOrigin string    `json:"trash_origin,omitempty"`
	Origin      string    `json:"origin_link,omitempty"` // anonymous uploads: the upload-only link's ID
	Shared      string    `json:"shared,omitempty"`      // a shared folder (mount or root): its ID
}

func toJSON(e *client.Entry) entryJSON {
	j := entryJSON{
		Path: e.Path, Name: e.Name, Type: "file", ID: e.ID.String(), Size: e.Size,
		MTime: e.MTime.UTC(), Mode: fmt.Sprintf("%04o", e.Mode&0o7777), Version: e.Version,
		TrashOrigin: e.TrashOrigin, Origin: e.Origin,
	}
	if e.Shared != (coffer.TreeID{}) {
		j.Shared = e.Shared.String()
	}
	if e.IsDir {
		j.Type = "folder"
	} else {
		j.SHA256 = hex.EncodeToString(e.Hash[:])
	}
	return j
}

// printEntriesJSON prints es as a JSON array, byte for byte what printJSON prints for the
// []entryJSON, one element at a time: a 100,000-entry listing is never held as one document. It
// drops each entry (es[i] = nil) once printed.
func (a *app) printEntriesJSON(es []*client.Entry) error {
	if len(es) == 0 {
		return a.printJSON([]entryJSON{})
	}
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	w.WriteString("[\n")
	for i, e := range es {
		b, err := json.MarshalIndent(toJSON(e), "  ", "  ")
		if err != nil {
			return err
		}
		es[i] = nil
		w.WriteString("  ")
		w.Write(b)
		if i < len(es)-1 {
			w.WriteString(",")
		}
		w.WriteString("\n")
	}
	w.WriteString("]\n")
	return w.Flush()
}

// modeString renders an entry's mode like ls -l ("drwxr-xr-x").
func modeString(e *client.Entry) string {
	m := fs.FileMode(e.Mode & 0o777)
	if e.IsDir {
		m |= fs.ModeDir
	}
	return m.String()
}

// humanSize renders n bytes with binary units ("4.0 KiB").
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanTime renders a timestamp in local time, like ls -l.
func humanTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// table aligns columns with two spaces between them.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)} }

func (t *table) row(cols ...string) {
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }
