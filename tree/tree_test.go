package tree

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"coffer"
	"coffer/format"
)

// model is a whole tree state kept naively: node -> (parent, hash, isFolder).
type model struct {
	parent map[coffer.NodeID]coffer.NodeID
	hash   map[coffer.NodeID][32]byte
	folder map[coffer.NodeID]bool
	// derived, as a store would keep it
	summaries map[coffer.NodeID]format.FolderSummary
	buckets   [256][32]byte
}

func newModel() *model {
	return &model{parent: map[coffer.NodeID]coffer.NodeID{}, hash: map[coffer.NodeID][32]byte{},
		folder: map[coffer.NodeID]bool{}, summaries: map[coffer.NodeID]format.FolderSummary{}}
}

func (m *model) Children(f coffer.NodeID) ([]format.Entry, error) {
	var out []format.Entry
	for n, p := range m.parent {
		if p == f {
			out = append(out, format.Entry{Node: n, Hash: m.hash[n]})
		}
	}
	slices.SortFunc(out, func(a, b format.Entry) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	return out, nil
}

func (m *model) Bucket(b uint8) ([]format.FolderSummary, error) {
	var out []format.FolderSummary
	for _, s := range m.summaries {
		if format.BucketOf(s.Folder) == b {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b format.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
	return out, nil
}

func (m *model) Buckets() (*[256][32]byte, error) { b := m.buckets; return &b, nil }

// fromScratch computes the state root of the model without any incremental step.
func (m *model) fromScratch() [32]byte {
	folders := map[coffer.NodeID]bool{}
	for _, p := range m.parent {
		folders[p] = true
	}
	var all [256][32]byte
	byBucket := map[uint8][]format.FolderSummary{}
	for f := range folders {
		ch, _ := m.Children(f)
		byBucket[format.BucketOf(f)] = append(byBucket[format.BucketOf(f)],
			format.FolderSummary{Folder: f, Count: uint64(len(ch)), Root: format.FolderRoot(f, ch)})
	}
	for b, fs := range byBucket {
		slices.SortFunc(fs, func(a, b format.FolderSummary) int { return bytes.Compare(a.Folder[:], b.Folder[:]) })
		all[b] = format.BucketHash(b, fs)
	}
	return format.StateRoot(&all)
}

func (m *model) apply(t *testing.T, ops []Op) *Result {
	t.Helper()
	res, err := Apply(m, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, op := range ops {
		if op.Tombstone {
			delete(m.parent, op.Node)
			delete(m.hash, op.Node)
			continue
		}
		m.parent[op.Node] = op.Parent
		m.hash[op.Node] = op.Hash
	}
	for _, s := range res.Folders {
		if s.Count == 0 {
			delete(m.summaries, s.Folder)
		} else {
			m.summaries[s.Folder] = s
		}
	}
	m.buckets = *res.All
	return res
}

func randHash(r *rand.Rand) (h [32]byte) {
	for i := range h {
		h[i] = byte(r.Uint32())
	}
	return h
}

func randID(r *rand.Rand) (id coffer.NodeID) {
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

// TestApplyMatchesScratch checks, over random commits, that the incremental computation equals a
// recomputation of the whole state from scratch, and that VerifyListing accepts every honest
// listing.
func TestApplyMatchesScratch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := newModel()
	var folders []coffer.NodeID
	folders = append(folders, coffer.NodeID{}) // top level
	for step := 0; step < 200; step++ {
		var ops []Op
		used := map[coffer.NodeID]bool{}
		for k := 0; k < 1+r.IntN(8); k++ {
			switch {
			case r.IntN(3) == 0 || len(m.parent) < 3: // create
				id := randID(r)
				p := folders[r.IntN(len(folders))]
				isFolder := r.IntN(3) == 0
				m.folder[id] = isFolder
				if isFolder {
					folders = append(folders, id)
				}
				ops = append(ops, Op{Node: id, Parent: p, Hash: randHash(r)})
				used[id] = true
			default: // modify, move or delete an existing file
				var n coffer.NodeID
				for cand := range m.parent {
					if !m.folder[cand] && !used[cand] {
						n = cand
						break
					}
				}
				if n.IsZero() {
					continue
				}
				used[n] = true
				op := Op{Node: n, Existed: true, OldParent: m.parent[n], Parent: m.parent[n], Hash: randHash(r)}
				switch r.IntN(3) {
				case 0:
					op.Parent = folders[r.IntN(len(folders))]
				case 1:
					op.Tombstone = true
				}
				ops = append(ops, op)
			}
		}
		// Parents created in this commit must be in the model for Children; they are (empty).
		res := m.apply(t, ops)
		if want := m.fromScratch(); res.StateRoot != want {
			t.Fatalf("step %d: incremental root %x != scratch %x", step, res.StateRoot, want)
		}
	}
	// Every folder's honest listing verifies.
	root := m.fromScratch()
	for _, f := range folders {
		ch, _ := m.Children(f)
		bk, _ := m.Bucket(format.BucketOf(f))
		if err := VerifyListing(root, &m.buckets, bk, f, ch); err != nil {
			t.Fatalf("honest listing of %v: %v", f, err)
		}
	}
}

func TestVerifyListingRefusesTampering(t *testing.T) {
	m := newModel()
	f := coffer.NodeID{7}
	var ops []Op
	ops = append(ops, Op{Node: f, Parent: coffer.NodeID{}, Hash: sha256.Sum256([]byte("folder"))})
	for i := 0; i < 5; i++ {
		ops = append(ops, Op{Node: coffer.NodeID{9, byte(i)}, Parent: f, Hash: sha256.Sum256([]byte{byte(i)})})
	}
	m.apply(t, ops)
	root := m.fromScratch()
	ch, _ := m.Children(f)
	bk, _ := m.Bucket(format.BucketOf(f))
	if err := VerifyListing(root, &m.buckets, bk, f, ch); err != nil {
		t.Fatalf("honest: %v", err)
	}
	cases := map[string]func() ([]format.Entry, []format.FolderSummary, [256][32]byte){
		"dropped entry": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			return slices.Delete(slices.Clone(ch), 2, 3), bk, m.buckets
		},
		"injected entry": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			c := append(slices.Clone(ch), format.Entry{Node: coffer.NodeID{0xff}, Hash: [32]byte{1}})
			return c, bk, m.buckets
		},
		"swapped hash": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			c := slices.Clone(ch)
			c[0].Hash, c[1].Hash = c[1].Hash, c[0].Hash
			return c, bk, m.buckets
		},
		"reordered": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			c := slices.Clone(ch)
			c[0], c[1] = c[1], c[0]
			return c, bk, m.buckets
		},
		"folder hidden from bucket": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			return nil, nil, m.buckets
		},
		"bucket hash edited": func() ([]format.Entry, []format.FolderSummary, [256][32]byte) {
			b := m.buckets
			b[3][0] ^= 1
			return ch, bk, b
		},
	}
	for name, mk := range cases {
		c, b, all := mk()
		err := VerifyListing(root, &all, b, f, c)
		if !errors.Is(err, coffer.ErrAuth) {
			t.Errorf("%s: VerifyListing = %v, want ErrAuth", name, err)
		}
	}
}

func TestApplyRefusesDuplicateNodes(t *testing.T) {
	m := newModel()
	n := coffer.NodeID{1}
	_, err := Apply(m, []Op{{Node: n}, {Node: n}})
	if !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("Apply(dup) = %v, want ErrInvalid", err)
	}
}
