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
	"time"

	"coffer"
	"coffer/format"
)

// State directory layout (Config.StateDir):
//
//	session.json                     the logged-in session (0600; holds the master key)
//	accounts/<account>/state.json    last verified head per tree, highest bundle generation
//	journal/                         upload journals (one per local file and remote path)
const (
	sessionFile = "session.json"
	accountsDir = "accounts"
	stateFile   = "state.json"
	journalDir  = "journal"
)

// savedSession is session.json. The device is trusted (DESIGN.md, threat model), so the master
// key is kept here, as megacmd does, in a 0600 file.
type savedSession struct {
	Server    string           `json:"server"`
	Username  string           `json:"username"`
	Account   coffer.AccountID `json:"account"`
	Token     string           `json:"token"`
	Session   string           `json:"session"`
	MasterKey string           `json:"master_key"` // hex
}

// headState is the last verified head of one tree.
type headState struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"` // hex SHA-256 of Head
	Head    []byte `json:"head"` // the head bytes (for CheckNotRollback)
}

// accountState is accounts/<account>/state.json. It survives logout, so a later login still
// detects a server rolling the account back.
type accountState struct {
	Heads            map[coffer.TreeID]headState `json:"heads"`
	BundleGeneration uint64                      `json:"bundle_generation"`
	// Forks are the trees on which this device detected a fork: writes to them are refused
	// until ResolveFork (forks.go).
	Forks map[coffer.TreeID]forkState `json:"forks,omitempty"`
}

// forkState records a detected fork of one tree.
type forkState struct {
	Detected time.Time `json:"detected"`
	Detail   string    `json:"detail"` // the error message (IDs, versions and hashes only)
	// Resolved is set by ResolveFork: the record stays (so that another process merging an older
	// copy of the file does not bring the fork back) but no longer blocks writes.
	Resolved bool `json:"resolved,omitempty"`
}

// stateStore holds an account's verified state in memory and, if dir is set, on disk.
type stateStore struct {
	dir string // accounts/<account>; "" keeps state in memory only

	mu    sync.Mutex
	st    accountState
	reset coffer.TreeID // while resolveFork saves: the tree whose head replaces the file's
}

func openState(stateDir string, acct coffer.AccountID) (*stateStore, error) {
	s := &stateStore{st: accountState{Heads: map[coffer.TreeID]headState{}}}
	if stateDir == "" {
		return s, nil
	}
	s.dir = filepath.Join(stateDir, accountsDir, acct.String())
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.st = st
	return s, nil
}

func (s *stateStore) load() (accountState, error) {
	st := accountState{Heads: map[coffer.TreeID]headState{}}
	b, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("client: state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("client: state %s: %v: %w", filepath.Join(s.dir, stateFile), err, coffer.ErrCorrupt)
	}
	if st.Heads == nil {
		st.Heads = map[coffer.TreeID]headState{}
	}
	return st, nil
}

// head returns the last verified head of tree, or nil.
func (s *stateStore) head(tree coffer.TreeID) (*format.Head, error) {
	s.mu.Lock()
	hs, ok := s.st.Heads[tree]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	h, err := format.ParseHead(hs.Head)
	if err != nil {
		return nil, fmt.Errorf("client: state: remembered head: %w", err)
	}
	return h, nil
}

// rememberHead records h if it is newer than the remembered head of its tree. The caller has
// verified h (signature, writer, not a rollback).
func (s *stateStore) rememberHead(h *format.Head) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.st.Heads[h.Tree]; ok && cur.Version >= h.Version {
		return nil
	}
	hash := h.Hash()
	s.st.Heads[h.Tree] = headState{Version: h.Version, Hash: hex.EncodeToString(hash[:]), Head: h.Marshal()}
	return s.saveLocked()
}

// fork returns the unresolved fork recorded for tree, if any.
func (s *stateStore) fork(tree coffer.TreeID) (forkState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs, ok := s.st.Forks[tree]
	return fs, ok && !fs.Resolved
}

// recordFork records a fork of tree detected now (the first detection's detail is kept while it
// is unresolved).
func (s *stateStore) recordFork(tree coffer.TreeID, detail string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fs, ok := s.st.Forks[tree]; ok && !fs.Resolved {
		return nil
	}
	if s.st.Forks == nil {
		s.st.Forks = map[coffer.TreeID]forkState{}
	}
	s.st.Forks[tree] = forkState{Detected: now, Detail: detail}
	return s.saveLocked()
}

// resolveFork marks tree's fork resolved and replaces its remembered head by h, even if h is
// older (the user accepted the server's history). now must be later than the detection.
func (s *stateStore) resolveFork(h *format.Head, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.st.Forks[h.Tree]
	if s.st.Forks == nil {
		s.st.Forks = map[coffer.TreeID]forkState{}
	}
	s.st.Forks[h.Tree] = forkState{Detected: now, Detail: fs.Detail, Resolved: true}
	hash := h.Hash()
	s.st.Heads[h.Tree] = headState{Version: h.Version, Hash: hex.EncodeToString(hash[:]), Head: h.Marshal()}
	s.reset = h.Tree
	defer func() { s.reset = coffer.TreeID{} }()
	return s.saveLocked()
}

func (s *stateStore) bundleGeneration() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.BundleGeneration
}

func (s *stateStore) rememberBundleGeneration(g uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g <= s.st.BundleGeneration {
		return nil
	}
	s.st.BundleGeneration = g
	return s.saveLocked()
}

// saveLocked merges with the file (another process may have seen newer heads) and writes it.
func (s *stateStore) saveLocked() error {
	if s.dir == "" {
		return nil
	}
	disk, err := s.load()
	if err != nil {
		return err
	}
	// A fork record newer on disk wins; if it is a resolution, so does the head it set (this
	// process may still hold a head of the abandoned branch).
	adopt := map[coffer.TreeID]bool{}
	for t, fs := range disk.Forks {
		if cur, ok := s.st.Forks[t]; !ok || fs.Detected.After(cur.Detected) {
			if s.st.Forks == nil {
				s.st.Forks = map[coffer.TreeID]forkState{}
			}
			s.st.Forks[t] = fs
			adopt[t] = fs.Resolved
		}
	}
	for t, hs := range disk.Heads {
		if cur, ok := s.st.Heads[t]; t != s.reset && (!ok || hs.Version > cur.Version || adopt[t]) {
			s.st.Heads[t] = hs
		}
	}
	s.st.BundleGeneration = max(s.st.BundleGeneration, disk.BundleGeneration)
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("client: state: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("client: state: %w", err)
	}
	return writeFileAtomic(filepath.Join(s.dir, stateFile), b, 0o600)
}

// writeFileAtomic writes data to path via a synced temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("client: write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("client: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("client: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("client: write %s: %w", path, err)
	}
	return nil
}

// loadSession reads session.json (ErrNotLoggedIn if absent).
func loadSession(stateDir string) (*savedSession, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("client: resume: no state directory: %w", ErrNotLoggedIn)
	}
	p := filepath.Join(stateDir, sessionFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("client: resume: %w", ErrNotLoggedIn)
	}
	if err != nil {
		return nil, fmt.Errorf("client: resume: %w", err)
	}
	var s savedSession
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client: resume: %s: %v: %w", p, err, coffer.ErrCorrupt)
	}
	if s.Token == "" || s.Server == "" || len(s.MasterKey) != 64 {
		return nil, fmt.Errorf("client: resume: %s: incomplete session: %w", p, coffer.ErrCorrupt)
	}
	return &s, nil
}

func saveSession(stateDir string, s *savedSession) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("client: save session: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("client: save session: %w", err)
	}
	return writeFileAtomic(filepath.Join(stateDir, sessionFile), b, 0o600)
}
