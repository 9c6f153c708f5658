package client

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"coffer"
)

// sharesFile (accounts/<account>/shares.json) pins, per shared tree, the highest roster
// generation this device verified (a lower one is a rollback) with its hash (two rosters of one
// generation are a forgery), the owner last verified (informational: the trusted owner is the
// one in the account's bundle entry, FORMAT.md §5), and a tree key of a rotation this device
// started but has not yet sealed into its bundle (revoke: see Client.Revoke).
const sharesFile = "shares.json"

type sharePin struct {
	Generation uint64           `json:"roster_generation"`
	RosterHash string           `json:"roster_hash"` // hex SHA-256 of the roster bytes
	Owner      coffer.AccountID `json:"owner"`
	OwnerKey   string           `json:"owner_key"` // hex Ed25519 public key
	// PendingKey/PendingEpoch: the new tree key of a rotation posted by this device (owner),
	// kept until the bundle holds it.
	PendingKey   string `json:"pending_key,omitempty"`
	PendingEpoch uint32 `json:"pending_epoch,omitempty"`
	// MountNode is the last known mount folder of the tree in the account tree (a hint).
	MountNode coffer.NodeID `json:"mount_node,omitzero"`
}

type shareStore struct {
	path string // "" keeps pins in memory only

	mu   sync.Mutex
	pins map[coffer.TreeID]*sharePin
}

func openShareStore(stateDir string, acct coffer.AccountID) (*shareStore, error) {
	s := &shareStore{pins: map[coffer.TreeID]*sharePin{}}
	if stateDir == "" {
		return s, nil
	}
	s.path = filepath.Join(stateDir, accountsDir, acct.String(), sharesFile)
	pins, err := s.load()
	if err != nil {
		return nil, err
	}
	s.pins = pins
	return s, nil
}

func (s *shareStore) load() (map[coffer.TreeID]*sharePin, error) {
	out := map[coffer.TreeID]*sharePin{}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: shares state: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("client: shares state %s: %v: %w", s.path, err, coffer.ErrCorrupt)
	}
	for t, p := range out {
		if p == nil {
			delete(out, t)
		}
	}
	return out, nil
}

// get returns a copy of the pin of tree (zero if none).
func (s *shareStore) get(tree coffer.TreeID) sharePin {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pins[tree]; p != nil {
		return *p
	}
	return sharePin{}
}

// update applies fn to the pin of tree (created if missing) and saves, merging with the file
// (another process may have pinned a newer generation).
func (s *shareStore) update(tree coffer.TreeID, fn func(p *sharePin)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path != "" {
		disk, err := s.load()
		if err != nil {
			return err
		}
		for t, dp := range disk {
			if cur := s.pins[t]; cur == nil || dp.Generation > cur.Generation {
				s.pins[t] = dp
			}
		}
	}
	p := s.pins[tree]
	if p == nil {
		p = &sharePin{}
		s.pins[tree] = p
	}
	fn(p)
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.pins, "", "  ")
	if err != nil {
		return fmt.Errorf("client: shares state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("client: shares state: %w", err)
	}
	return writeFileAtomic(s.path, b, 0o600)
}

func hexKey(k [32]byte) string { return hex.EncodeToString(k[:]) }
