package hostile

// Scenarios 21-25, 32 and 35 of doc/SECURITY.md: listings, records, heads.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"coffer"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// treeFixture is a fixture with the decrypted records of /d, /e and their children.
type treeFixture struct {
	*fixture
	s        *secrets
	d, e     *opened
	a, b, x  *opened
	attacker ed25519.PrivateKey
}

func newTreeFixture(t *testing.T) *treeFixture {
	f := newFixture(t, "victim")
	s := captureSecrets(t, f.env, "victim")
	_, priv, _ := ed25519.GenerateKey(nil)
	return &treeFixture{fixture: f, s: s, attacker: priv,
		d: s.lookup(t, f.env, "/d"), e: s.lookup(t, f.env, "/e"),
		a: s.lookup(t, f.env, "/d/a"), b: s.lookup(t, f.env, "/d/b"), x: s.lookup(t, f.env, "/e/x")}
}

var levels = []forgeLevel{forgeNaive, forgeHashes, forgeResign}

func (l forgeLevel) String() string { return [...]string{"naive", "hashes", "resigned"}[l] }

// listingAttack rewrites folder's listing with recs(original records) at every level and checks
// that listing p and downloading each of downloads are refused with ErrAuth by a fresh login.
func (tf *treeFixture) listingAttack(t *testing.T, folder *opened, p string, recs func([][]byte) [][]byte, downloads ...string) {
	t.Helper()
	tf.listingAttackClass(t, coffer.ErrAuth, folder, p, recs, downloads...)
}

// listingAttackClass is listingAttack with another expected class (nil: any refusal class).
func (tf *treeFixture) listingAttackClass(t *testing.T, class error, folder *opened, p string, recs func([][]byte) [][]byte, downloads ...string) {
	t.Helper()
	for _, lvl := range levels {
		// big: List turns the listing into entries as it streams (client.Config.BigFolder 1)
		// instead of keeping decrypted nodes: both paths must refuse.
		for _, big := range []bool{false, true} {
			name := lvl.String()
			if big {
				name += "/big folder"
			}
			t.Run(name, func(t *testing.T) {
				cfg := tf.env.Config(tf.state)
				if big {
					cfg.BigFolder = 1
				}
				c, err := client.Login(context.Background(), cfg, tf.user, testenv.Password(tf.user), "x")
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				tf.env.SetHook(listingHook(folder.rec.Node.String(), func(fs []frame, id coffer.NodeID) []frame {
					return forge(t, fs, id, recs(recordsOf(fs)), lvl, tf.attacker)
				}))
				defer tf.env.SetHook(nil)
				expectListRefused(t, c, p, class)
				for _, dl := range downloads {
					expectDownloadRefused(t, c, dl, class)
				}
			})
		}
	}
}

// storeAttack applies sql (with args) to the server's database, checks that a fresh login cannot
// list p or download the downloads (any error: the server refuses to serve a state that does not
// match its head), then undoes it with undo.
func (tf *treeFixture) storeAttack(t *testing.T, p string, do, undo func(db execer), downloads ...string) {
	t.Helper()
	db := tf.env.DB(t)
	do(db)
	defer undo(db)
	c := tf.login(t, t.TempDir())
	err := expectListFails(t, c, p)
	if !isRefusal(err) && !errors.Is(err, coffer.ErrUnavailable) {
		t.Errorf("list %s after store tampering: %v", p, err)
	}
	for _, dl := range downloads {
		expectDownloadRefusedAny(t, c, dl)
	}
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

func without(recs [][]byte, drop []byte) [][]byte {
	var out [][]byte
	for _, r := range recs {
		if !bytes.Equal(r, drop) {
			out = append(out, r)
		}
	}
	return out
}

func replace(recs [][]byte, old, new []byte) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r
		if bytes.Equal(r, old) {
			out[i] = new
		}
	}
	return out
}

// splice returns head's header (kind, node, parent, version, prev, author) with body's wrapped
// key, body and signature.
func splice(head, body []byte) []byte {
	return append(bytes.Clone(head[:format.RecordHeaderLen]), body[format.RecordHeaderLen:]...)
}

func TestScenario21_NameSwap(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	t.Run("spliced bodies", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte {
			recs = replace(recs, tf.a.raw, splice(tf.a.raw, tf.b.raw))
			return replace(recs, tf.b.raw, splice(tf.b.raw, tf.a.raw))
		}, "/d/a", "/d/b")
	})
	t.Run("store", func(t *testing.T) {
		ha, hb := sha256.Sum256(tf.a.raw), sha256.Sum256(tf.b.raw)
		tf.storeAttack(t, "/d", func(db execer) {
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", splice(tf.a.raw, tf.b.raw), hb[:], tf.a.rec.Node[:])
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", splice(tf.b.raw, tf.a.raw), ha[:], tf.b.rec.Node[:])
		}, func(db execer) {
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", tf.a.raw, ha[:], tf.a.rec.Node[:])
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", tf.b.raw, hb[:], tf.b.rec.Node[:])
		}, "/d/a")
	})
}

func TestScenario22_Reparenting(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	// /e/x listed under /d, as is and with its header's parent rewritten to /d.
	t.Run("moved record", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return append(recs, tf.x.raw) })
	})
	t.Run("parent field rewritten", func(t *testing.T) {
		moved := bytes.Clone(tf.x.raw)
		copy(moved[22:38], tf.d.rec.Node[:]) // magic 4, kind 1, flags 1, node 16, parent 16
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return append(recs, moved) })
	})
	t.Run("removed from its folder", func(t *testing.T) {
		tf.listingAttack(t, tf.e, "/e", func(recs [][]byte) [][]byte { return without(recs, tf.x.raw) }, "/e/x")
	})
	t.Run("store", func(t *testing.T) {
		tf.storeAttack(t, "/d", func(db execer) {
			mustExec(t, db, "UPDATE nodes SET parent = ? WHERE node = ?", tf.d.rec.Node[:], tf.x.rec.Node[:])
		}, func(db execer) {
			mustExec(t, db, "UPDATE nodes SET parent = ? WHERE node = ?", tf.e.rec.Node[:], tf.x.rec.Node[:])
		})
	})
}

func TestScenario23_DroppedEntry(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return without(recs, tf.a.raw) }, "/d/a", "/d/b")
	t.Run("store", func(t *testing.T) {
		var row []any
		tf.storeAttack(t, "/d", func(db execer) {
			row = []any{tf.a.raw}
			mustExec(t, db, "DELETE FROM nodes WHERE node = ?", tf.a.rec.Node[:])
		}, func(db execer) {
			h := sha256.Sum256(tf.a.raw)
			mustExec(t, db, "INSERT INTO nodes (tree, node, parent, kind, version, hash, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
				tf.s.bundle.Tree[:], tf.a.rec.Node[:], tf.d.rec.Node[:], int(tf.a.rec.Kind), int64(tf.a.rec.Version), h[:], row[0])
		}, "/d/b")
	})
}

func TestScenario24_InjectedEntry(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	// A record the server made itself: a fresh node key wrapped under a key it chose, its own
	// author key, parent /d.
	body := &format.Body{Name: "invoice.pdf.exe", MTime: 1, Mode: 0o644}
	ownWrap := format.NewTreeKey().WrapKey()
	rec, err := format.SealRecord(format.KindFolder, coffer.NewNodeID(), tf.d.rec.Node, 1, [32]byte{}, format.NewNodeKey(), ownWrap, body, tf.attacker)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("server-made record", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return append(recs, rec.Marshal()) }, "/d/a")
	})
	t.Run("record from elsewhere", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return append(recs, tf.e.raw) }, "/d/a")
	})
	t.Run("duplicate", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func(recs [][]byte) [][]byte { return append(recs, tf.a.raw) }, "/d/a")
	})
	t.Run("store", func(t *testing.T) {
		raw := rec.Marshal()
		h := sha256.Sum256(raw)
		tf.storeAttack(t, "/d", func(db execer) {
			mustExec(t, db, "INSERT INTO nodes (tree, node, parent, kind, version, hash, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
				tf.s.bundle.Tree[:], rec.Node[:], tf.d.rec.Node[:], int(rec.Kind), 1, h[:], raw)
		}, func(db execer) {
			mustExec(t, db, "DELETE FROM nodes WHERE node = ?", rec.Node[:])
		}, "/d/a")
	})
}

func TestScenario25_EditedSizeOrMTime(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	// The body (name, size, mtime, mode, content) is AEAD-encrypted: flip bytes at several
	// places of a's body ciphertext, and in its cleartext header (version).
	bodyStart := format.RecordHeaderLen + 60 + 4
	versionByte := 4 + 1 + 1 + 16 + 16 + 7
	for _, pos := range []int{bodyStart + 12, bodyStart + 40, len(tf.a.raw) - 64 - 17, versionByte} {
		t.Run(fmt.Sprintf("byte %d", pos), func(t *testing.T) {
			edited := bytes.Clone(tf.a.raw)
			edited[pos] ^= 0x01
			var class error = coffer.ErrAuth
			if pos == versionByte {
				class = nil // version 0 does not even parse (ErrCorrupt)
			}
			tf.listingAttackClass(t, class, tf.d, "/d", func(recs [][]byte) [][]byte { return replace(recs, tf.a.raw, edited) }, "/d/a")
		})
	}
	t.Run("store", func(t *testing.T) {
		edited := bytes.Clone(tf.a.raw)
		edited[bodyStart+20] ^= 0x01
		he, ha := sha256.Sum256(edited), sha256.Sum256(tf.a.raw)
		tf.storeAttack(t, "/d", func(db execer) {
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", edited, he[:], tf.a.rec.Node[:])
		}, func(db execer) {
			mustExec(t, db, "UPDATE nodes SET record = ?, hash = ? WHERE node = ?", tf.a.raw, ha[:], tf.a.rec.Node[:])
		}, "/d/a")
	})
}

func TestScenario32_WholeTreeRollback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "victim")
	env := f.env
	ctx := context.Background()
	// 1. Record every listing the server sends while the tree is at version n.
	var mu sync.Mutex
	old := map[string][]byte{}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if isListing(req, resp) {
			b, _ := testenv.ReadBody(resp)
			mu.Lock()
			old[folderOf(req)] = b
			mu.Unlock()
		}
		return nil
	})
	for _, p := range []string{"/", "/d", "/e"} {
		if _, err := f.c.List(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshot the whole metadata store at version n (VACUUM INTO is consistent).
	snap := filepath.Join(t.TempDir(), "snap.db")
	db := env.DB(t)
	if _, err := db.Exec("VACUUM INTO ?", snap); err != nil {
		t.Fatal(err)
	}
	env.SetHook(nil)
	// 2. The tree moves on: a deletion, a new folder.
	if err := f.c.Remove(ctx, "/d/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Mkdir(ctx, "/newer", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.List(ctx, "/d"); err != nil {
		t.Fatal(err)
	}
	replay := func(req *http.Request, resp *http.Response) error {
		if !isListing(req, resp) {
			return nil
		}
		mu.Lock()
		b, ok := old[folderOf(req)]
		mu.Unlock()
		if ok {
			testenv.ReplaceBody(resp, b)
		}
		return nil
	}
	// 3. Replayed listings: refused by the same client, by a new login with the same state
	// directory (CLI restart) and by Resume.
	env.SetHook(replay)
	expectListRefused(t, f.c, "/d", coffer.ErrRollback)
	c2 := f.login(t, f.state)
	expectListRefused(t, c2, "/d", coffer.ErrRollback)
	expectDownloadRefused(t, c2, "/d/a", coffer.ErrRollback)
	c3, err := client.Resume(ctx, env.Config(f.state))
	if err != nil {
		t.Fatal(err)
	}
	expectListRefused(t, c3, "/", coffer.ErrRollback)
	env.SetHook(nil)
	// 4. The whole store rolled back (the server restores its snapshot: every table).
	mustExec(t, db, "ATTACH DATABASE ? AS snap", snap)
	for _, tbl := range []string{"trees", "nodes", "history", "folders", "node_blobs"} {
		mustExec(t, db, "DELETE FROM main."+tbl)
		mustExec(t, db, "INSERT INTO main."+tbl+" SELECT * FROM snap."+tbl)
	}
	mustExec(t, db, "DETACH DATABASE snap")
	c4 := f.login(t, f.state)
	expectListRefused(t, c4, "/d", coffer.ErrRollback)
	expectDownloadRefused(t, c4, "/d/a", coffer.ErrRollback)
	// A device that never saw the newer head cannot tell (documented: fork detection needs
	// devices to compare heads, issue 3); it sees the old, authentic state.
	c5 := f.login(t, t.TempDir())
	if es, err := c5.List(ctx, "/d"); err != nil || len(es) != 3 {
		t.Fatalf("fresh device on the rolled-back store: %d entries, %v", len(es), err)
	}
}

func TestScenario35_MassDeletion(t *testing.T) {
	t.Parallel()
	tf := newTreeFixture(t)
	t.Run("folder emptied", func(t *testing.T) {
		tf.listingAttack(t, tf.d, "/d", func([][]byte) [][]byte { return nil }, "/d/a")
	})
	t.Run("top level emptied", func(t *testing.T) {
		root := tf.s.lookup(t, tf.env, "/")
		tf.listingAttack(t, root, "/", func([][]byte) [][]byte { return nil }, "/d/a")
	})
	t.Run("store rows deleted", func(t *testing.T) {
		var saved [][]any
		tf.storeAttack(t, "/d", func(db execer) {
			for _, o := range []*opened{tf.a, tf.b, tf.s.lookup(t, tf.env, "/d/s")} {
				h := sha256.Sum256(o.raw)
				saved = append(saved, []any{tf.s.bundle.Tree[:], o.rec.Node[:], tf.d.rec.Node[:], int(o.rec.Kind), int64(o.rec.Version), h[:], o.raw})
			}
			mustExec(t, db, "DELETE FROM nodes WHERE parent = ?", tf.d.rec.Node[:])
		}, func(db execer) {
			for _, r := range saved {
				mustExec(t, db, "INSERT INTO nodes (tree, node, parent, kind, version, hash, record) VALUES (?, ?, ?, ?, ?, ?, ?)", r...)
			}
		}, "/d/a")
	})
	t.Run("store rows and summary deleted", func(t *testing.T) {
		tf.storeAttack(t, "/d", func(db execer) {
			mustExec(t, db, "DELETE FROM nodes WHERE parent = ?", tf.d.rec.Node[:])
			mustExec(t, db, "DELETE FROM folders WHERE folder = ?", tf.d.rec.Node[:])
		}, func(db execer) {}, "/d/a")
	})
}

func mustExec(t testing.TB, db execer, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
