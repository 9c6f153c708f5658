package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Forks and freezes (doc/DESIGN.md "Forks and freezes"). A server may show two devices of one
// account two diverging histories (a fork), each growing by one version per commit, or keep
// serving one device an old head (a freeze). Three checks catch it:
//
//   - Ancestry: a device moves from the head it remembers to a newer one only if the newer one's
//     hash chain contains the remembered one (the heads between come from
//     GET /v1/trees/{tree}/heads; the hashes are checked, so they need no signatures). Once
//     forked, the server can never show a device the other branch again.
//   - Gossip: every device publishes the latest head it verified (PUT /v1/trees/{tree}/seen; the
//     head is signed by the tree's writer, so the server can withhold or replay a publication but
//     not forge one) and checks every head the others published against its own chain: an
//     older one must be an ancestor, an equal version the same head, a newer one a descendant.
//   - Freeze: a published head newer than the head the server calls current is a head the server
//     withholds. The device remembers it when it descends from its own head, so from then on an
//     older head is refused as a rollback.
//
// A fork is recorded in the state directory and blocks writes to the tree until ResolveFork.

var (
	// ErrFork reports that the server shows this device a history that diverges from one this
	// device or another device of the account verified. It wraps coffer.ErrRollback. Writes to
	// the tree are refused until ResolveFork.
	ErrFork = fmt.Errorf("fork detected: %w", coffer.ErrRollback)
	// ErrFreeze reports that the server withholds a head another device published (it serves an
	// older one as current). It wraps coffer.ErrRollback.
	ErrFreeze = fmt.Errorf("freeze detected: %w", coffer.ErrRollback)
)

// defaultGossipEvery is how often a client exchanges heads by default (and at its first view).
const defaultGossipEvery = time.Minute

// maxGossipGap bounds how far behind the current head a published head is still checked (the
// check fetches the heads between: ≈ 228 bytes each).
const maxGossipGap = 4096

// maxChainCache bounds the verified versions kept per tree in memory.
const maxChainCache = 4096

// shortHash is a head hash as printed in errors: 16 hex digits.
func shortHash(h [32]byte) string { return hex.EncodeToString(h[:8]) }

// headName names a head in messages: version and short hash.
func headName(h *format.Head) string { return fmt.Sprintf("v%d (%s)", h.Version, shortHash(h.Hash())) }

// watch is a client's in-memory head watch: the verified chain, the gossip timing and the
// verification failure counters (alert.go). The zero value is ready to use.
type watch struct {
	chain      map[coffer.TreeID]map[uint64][32]byte // versions known to be on this device's chain
	lastGossip time.Time
	gossiping  bool
	fails      map[string]int
	alerted    bool
	headsBatch uint64 // heads asked for per request; 0: api.MaxHeads (the server's bound; tests lower it)
}

// onChain reports whether h is known to be on this device's chain of its tree.
func (c *Client) onChain(h *format.Head) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.watch.chain[h.Tree][h.Version]
	return ok && got == h.Hash()
}

// addChain records verified (version, hash) pairs of tree's chain.
func (c *Client) addChain(tree coffer.TreeID, hs map[uint64][32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch.chain == nil {
		c.watch.chain = map[coffer.TreeID]map[uint64][32]byte{}
	}
	m := c.watch.chain[tree]
	if m == nil {
		m = map[uint64][32]byte{}
		c.watch.chain[tree] = m
	}
	var top uint64
	for v, h := range hs {
		m[v] = h
		top = max(top, v)
	}
	if len(m) > maxChainCache {
		for v := range m {
			if v+maxChainCache/2 < top {
				delete(m, v)
			}
		}
	}
}

// checkHead is the freshness check of a verified (signed, right writer) head h served after this
// device remembered seen: no rollback (format.CheckNotRollback) and ancestry against the newest
// head this device remembers. A head that is not on this device's chain is a fork: recorded,
// and an error wrapping ErrFork naming the tree and both heads.
func (c *Client) checkHead(ctx context.Context, seen, h *format.Head) error {
	if err := format.CheckNotRollback(seen, h); err != nil {
		return err
	}
	if c.signer == nil {
		return nil // a link visitor: no head history on the link routes (SECURITY.md, gaps)
	}
	base := seen
	if cur, err := c.state.head(h.Tree); err != nil {
		return err
	} else if cur != nil && (base == nil || cur.Version > base.Version) {
		base = cur
	}
	if base == nil {
		return nil
	}
	lo, hi := base, h
	if h.Version < base.Version {
		lo, hi = h, base // a response sent before this device's newer head: must be its ancestor
	}
	ok, err := c.linked(ctx, lo, hi)
	if err != nil {
		return fmt.Errorf("client: tree %s: checking that head %s descends from head %s: %w", h.Tree, headName(hi), headName(lo), err)
	}
	if !ok {
		return c.forkFound(h.Tree, fmt.Sprintf("the server serves head %s, which is not on one chain with head %s this device verified",
			headName(h), headName(base)))
	}
	c.addChain(h.Tree, map[uint64][32]byte{h.Version: h.Hash()})
	return nil
}

// forkFound records a fork of tree and returns its error.
func (c *Client) forkFound(tree coffer.TreeID, detail string) error {
	msg := fmt.Sprintf("tree %s: %s", tree, detail)
	c.log.Warn("client: fork detected: the server shows this account diverging histories", "tree", tree.String())
	if err := c.state.recordFork(tree, msg, time.Now()); err != nil {
		return errors.Join(fmt.Errorf("client: %s: %w", msg, ErrFork), err)
	}
	return fmt.Errorf("client: %s; writes to this tree are refused until the fork is resolved: %w", msg, ErrFork)
}

// forkBlocks returns the recorded, unresolved fork of tree as an error, or nil.
func (c *Client) forkBlocks(tree coffer.TreeID) error {
	fs, ok := c.state.fork(tree)
	if !ok {
		return nil
	}
	return fmt.Errorf("client: %s (detected %s); writes are refused until the fork is resolved: %w",
		fs.Detail, fs.Detected.UTC().Format(time.RFC3339), ErrFork)
}

// linked reports whether hi descends from lo (lo.Version <= hi.Version, same tree), fetching the
// heads between from the server if this device does not know both are on its chain. A server
// that does not deliver every head between is an error wrapping coffer.ErrAuth.
func (c *Client) linked(ctx context.Context, lo, hi *format.Head) (bool, error) {
	if lo.Version == hi.Version {
		return lo.Hash() == hi.Hash(), nil
	}
	if c.onChain(lo) && c.onChain(hi) {
		return true, nil
	}
	c.mu.Lock()
	batch := cmp.Or(c.watch.headsBatch, api.MaxHeads)
	c.mu.Unlock()
	prev := lo.Hash()
	found := map[uint64][32]byte{lo.Version: prev}
	for v := lo.Version + 1; v < hi.Version; {
		raws, err := c.fetchHeads(ctx, lo.Tree, v, min(hi.Version-1, v+batch-1))
		if err != nil {
			return false, err
		}
		if len(raws) == 0 {
			return false, fmt.Errorf("the server withholds head v%d: %w", v, coffer.ErrAuth)
		}
		for _, b := range raws {
			h, err := format.ParseHead(b)
			if err != nil {
				return false, err
			}
			if h.Tree != lo.Tree || h.Version != v {
				return false, fmt.Errorf("the server answered head v%d of tree %s for v%d: %w", h.Version, h.Tree, v, coffer.ErrAuth)
			}
			if h.Prev != prev {
				return false, nil
			}
			prev = sha256.Sum256(b)
			found[v] = prev
			v++
		}
	}
	if hi.Prev != prev {
		return false, nil
	}
	found[hi.Version] = hi.Hash()
	c.addChain(lo.Tree, found)
	return true, nil
}

// fetchHeads fetches the heads from..to of tree (one request: at most api.MaxHeads).
func (c *Client) fetchHeads(ctx context.Context, tree coffer.TreeID, from, to uint64) ([][]byte, error) {
	path := fmt.Sprintf("/v1/trees/%s/heads?from=%d&to=%d", tree, from, to)
	resp, err := c.http.do(ctx, call{method: "GET", path: path, retry: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := min(to-from+1, api.MaxHeads)
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(want)*format.HeadLen+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("heads v%d..v%d: %w", from, to, err)
	}
	if len(b)%format.HeadLen != 0 || uint64(len(b)/format.HeadLen) > want {
		return nil, fmt.Errorf("heads v%d..v%d: answer of %d bytes: %w", from, to, len(b), errCorruptResponse)
	}
	out := make([][]byte, 0, len(b)/format.HeadLen)
	for ; len(b) > 0; b = b[format.HeadLen:] {
		out = append(out, b[:format.HeadLen:format.HeadLen])
	}
	return out, nil
}

// DeviceHead is the latest head one session (device) of the account published.
type DeviceHead struct {
	Session   string
	Device    string // the session's device label (as the server reports it)
	Version   uint64
	Hash      [32]byte
	Published time.Time // server clock (informational)
	Own       bool      // this client's own session
}

// HeadsReport is the outcome of a head exchange.
type HeadsReport struct {
	Tree    coffer.TreeID
	Version uint64   // this device's verified head after the exchange
	Hash    [32]byte // its hash
	Devices []DeviceHead
}

// CheckHeads exchanges heads with the account's other devices through the server now: it
// publishes the latest head this device verified and checks the server's current head and every
// head the other devices published against this device's chain. It returns an error wrapping
// ErrFork (a published head on another branch; writes are then refused until ResolveFork),
// ErrFreeze (a published head newer than the server's current one), coffer.ErrRollback,
// coffer.ErrAuth or coffer.ErrCorrupt. Clients also exchange heads by themselves at their first
// listing and then every Config.GossipEvery.
func (c *Client) CheckHeads(ctx context.Context) (*HeadsReport, error) {
	c.mu.Lock()
	c.watch.lastGossip = time.Now() // the view below need not exchange too
	c.mu.Unlock()
	if _, err := c.view(ctx); err != nil {
		return nil, err
	}
	return c.exchangeHeads(ctx)
}

// gossipIfDue exchanges heads if none was exchanged in the last Config.GossipEvery (and not by
// another goroutine right now).
func (c *Client) gossipIfDue(ctx context.Context) error {
	every := c.cfg.GossipEvery
	if c.signer == nil || every < 0 {
		return nil
	}
	if every == 0 {
		every = defaultGossipEvery
	}
	if _, forked := c.state.fork(c.tree); forked {
		// Known already: writes are blocked, reads of this device's own branch continue, and
		// CheckHeads reports it.
		return nil
	}
	c.mu.Lock()
	due := !c.watch.gossiping && (c.watch.lastGossip.IsZero() || time.Since(c.watch.lastGossip) >= every)
	if due {
		c.watch.gossiping, c.watch.lastGossip = true, time.Now()
	}
	c.mu.Unlock()
	if !due {
		return nil
	}
	defer func() {
		c.mu.Lock()
		c.watch.gossiping = false
		c.mu.Unlock()
	}()
	_, err := c.exchangeHeads(ctx)
	if err != nil && !isVerification(err) && ctx.Err() == nil {
		// The server could not be reached or failed: try again at the next listing. (A server
		// that never answers withholds everything; that is an availability failure.)
		c.log.Warn("client: head exchange failed; will retry", "err", err)
		c.mu.Lock()
		c.watch.lastGossip = time.Time{}
		c.mu.Unlock()
		return nil
	}
	return err
}

// exchangeHeads publishes this device's head and checks the answer (CheckHeads).
func (c *Client) exchangeHeads(ctx context.Context) (*HeadsReport, error) {
	tree := c.tree
	if err := c.forkBlocks(tree); err != nil {
		return nil, err
	}
	mine, err := c.state.head(tree)
	if err != nil {
		return nil, err
	}
	if mine == nil {
		return nil, fmt.Errorf("client: exchange heads: no verified head of tree %s yet: %w", tree, coffer.ErrInvalid)
	}
	var resp api.SeenResponse
	if err := c.http.json(ctx, "PUT", "/v1/trees/"+tree.String()+"/seen", &api.SeenRequest{Head: mine.Marshal()}, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: exchange heads: %w", err)
	}
	cur := mine
	if !bytes.Equal(resp.Current.Head, mine.Marshal()) { // else verified already
		if cur, err = c.authenticHead(resp.Current.Head, "the server's current head"); err != nil {
			return nil, err
		}
	}
	if err := c.checkHead(ctx, mine, cur); err != nil {
		return nil, fmt.Errorf("client: exchange heads: current head: %w", err)
	}
	if err := c.state.rememberHead(cur); err != nil {
		return nil, err
	}
	rep := &HeadsReport{Tree: tree, Version: cur.Version, Hash: cur.Hash()}
	for _, p := range resp.Heads {
		who := fmt.Sprintf("device %q (session %.8s)", p.Device, p.Session)
		ph, err := format.ParseHead(p.Head)
		if err != nil {
			return nil, fmt.Errorf("client: exchange heads: the head published by %s: %w", who, err)
		}
		if !c.onChain(ph) { // a head on this device's chain is authenticated by it
			if ph, err = c.authenticHead(p.Head, "the head published by "+who); err != nil {
				return nil, err
			}
		}
		rep.Devices = append(rep.Devices, DeviceHead{Session: p.Session, Device: p.Device, Version: ph.Version,
			Hash: ph.Hash(), Published: time.UnixMilli(p.Published).UTC(), Own: p.Own})
		if err := c.checkPublished(ctx, cur, ph, who, time.UnixMilli(p.Published)); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// authenticHead parses a head and checks its signature, tree and writer (the account key for the
// account tree; an authorised writer of a shared folder's roster).
func (c *Client) authenticHead(raw []byte, what string) (*format.Head, error) {
	h, err := format.ParseHead(raw)
	if err != nil {
		return nil, fmt.Errorf("client: exchange heads: %s: %w", what, err)
	}
	if err := h.VerifySignature(); err != nil {
		return nil, fmt.Errorf("client: exchange heads: %s: %w", what, err)
	}
	if h.Tree != c.tree {
		return nil, fmt.Errorf("client: exchange heads: %s is of another tree: %w", what, coffer.ErrAuth)
	}
	if err := c.authoriseHead(h); err != nil { // the account's key; a shared folder's writers
		return nil, fmt.Errorf("client: exchange heads: %s: %w", what, err)
	}
	return h, nil
}

// checkPublished checks a head another device published against cur, the server's current head
// (verified and on this device's chain).
func (c *Client) checkPublished(ctx context.Context, cur, p *format.Head, who string, when time.Time) error {
	switch {
	case cur.Version-min(p.Version, cur.Version) > maxGossipGap:
		// Published long ago: that device checks its own ancestry when it moves on.
		c.log.Debug("client: not checking a long-stale published head", "tree", cur.Tree.String(), "version", p.Version)
		return nil
	case p.Version <= cur.Version:
		ok, err := c.linked(ctx, p, cur)
		if err != nil {
			return fmt.Errorf("client: tree %s: checking the head %s published by %s: %w", cur.Tree, headName(p), who, err)
		}
		if !ok {
			return c.forkFound(cur.Tree, fmt.Sprintf("%s published head %s, which is not on this device's chain at head %s",
				who, headName(p), headName(cur)))
		}
		return nil
	default:
		// Newer than what the server calls current: withheld. If it extends this device's chain,
		// remember it, so that the older head is refused from now on.
		ok, err := c.linked(ctx, cur, p)
		if err == nil && !ok {
			return c.forkFound(cur.Tree, fmt.Sprintf("%s published head %s, which does not descend from this device's head %s",
				who, headName(p), headName(cur)))
		}
		if err == nil {
			if rerr := c.state.rememberHead(p); rerr != nil {
				return rerr
			}
		}
		c.log.Warn("client: freeze detected: the server withholds a newer head", "tree", cur.Tree.String(),
			"served", cur.Version, "published", p.Version)
		return fmt.Errorf("client: tree %s: %s published head %s at %s, but the server serves head %s as current: the server withholds updates: %w",
			cur.Tree, who, headName(p), when.UTC().Format(time.RFC3339), headName(cur), ErrFreeze)
	}
}

// ResolveFork accepts the server's current history of the account tree after a fork: the
// remembered head becomes the server's current head (verified: signature and writer), the fork
// no longer blocks writes, and the heads are exchanged again (which fails again while another
// device still publishes a head of the other branch). Changes made only on the abandoned branch
// are not in the accepted history: the device that has them must upload them again.
func (c *Client) ResolveFork(ctx context.Context) error {
	var info api.HeadInfo
	if err := c.http.json(ctx, "GET", "/v1/trees/"+c.tree.String()+"/head", nil, &info, true, false); err != nil {
		return fmt.Errorf("client: resolve fork: %w", err)
	}
	h, err := c.authenticHead(info.Head, "the server's current head")
	if err != nil {
		return err
	}
	if err := c.state.resolveFork(h, time.Now()); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.watch.chain, c.tree)
	c.cache = nil
	c.mu.Unlock()
	c.log.Info("client: fork resolved: accepted the server's history", "tree", c.tree.String(), "version", h.Version)
	_, err = c.CheckHeads(ctx)
	return err
}
