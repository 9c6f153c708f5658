package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"coffer"
	"coffer/api"
	"coffer/internal/metastore"
)

// Change feed limits.
const (
	defaultChangesLimit = 100
	maxChangesLimit     = 1000
	keepAliveInterval   = 15 * time.Second
)

// Notifier carries "account acct has a new commit at seq" between the commit path and the change
// streams. The in-process Hub serves a single node; a multi-node deployment replaces it
// (internal/notify: PostgreSQL LISTEN/NOTIFY carrying only account and sequence).
type Notifier interface {
	// Publish announces seq for acct. Delivery is best effort: subscribers re-read the feed
	// from the store, so a lost notification only delays a stream until the next one.
	Publish(ctx context.Context, acct coffer.AccountID, seq coffer.Seq) error
	// Subscribe returns a channel that receives the latest announced seq for acct (older
	// undelivered values are replaced, never queued) and a cancel function. The channel is closed
	// after cancel, when ctx ends, or when the notifier closes. A notifier that may have lost
	// notifications (e.g. after a reconnect) sends a seq above any real one, such as
	// math.MaxUint64: streams then re-read their feed from the store.
	Subscribe(ctx context.Context, acct coffer.AccountID) (<-chan coffer.Seq, func())
}

// Hub is the in-process Notifier.
type Hub struct {
	mu     sync.Mutex
	subs   map[coffer.AccountID]map[*hubSub]struct{}
	closed bool
}

type hubSub struct {
	ch   chan coffer.Seq
	once sync.Once
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[coffer.AccountID]map[*hubSub]struct{}{}} }

var _ Notifier = (*Hub)(nil)

// Publish implements Notifier. It never blocks.
func (h *Hub) Publish(_ context.Context, acct coffer.AccountID, seq coffer.Seq) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[acct] {
		select {
		case <-sub.ch: // drop the stale value
		default:
		}
		sub.ch <- seq // capacity 1 and we hold the lock: never blocks
	}
	return nil
}

// Subscribe implements Notifier.
func (h *Hub) Subscribe(ctx context.Context, acct coffer.AccountID) (<-chan coffer.Seq, func()) {
	sub := &hubSub{ch: make(chan coffer.Seq, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(sub.ch)
		return sub.ch, func() {}
	}
	if h.subs[acct] == nil {
		h.subs[acct] = map[*hubSub]struct{}{}
	}
	h.subs[acct][sub] = struct{}{}
	h.mu.Unlock()
	cancel := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[acct][sub]; ok {
			delete(h.subs[acct], sub)
			if len(h.subs[acct]) == 0 {
				delete(h.subs, acct)
			}
			close(sub.ch)
		}
	}
	stop := context.AfterFunc(ctx, cancel)
	return sub.ch, func() { stop(); cancel() }
}

// Close closes every subscription; later Subscribe calls return a closed channel.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for acct, subs := range h.subs {
		for sub := range subs {
			close(sub.ch)
		}
		delete(h.subs, acct)
	}
}

// publish announces a commit, logging (not failing) a notifier error: the commit is durable.
func (s *Server) publish(ctx context.Context, acct coffer.AccountID, seq coffer.Seq) {
	if err := s.notify.Publish(context.WithoutCancel(ctx), acct, seq); err != nil {
		s.log.Warn("publish change", "account", acct.String(), "seq", uint64(seq), "err", err)
	}
}

// parseSince reads the since query parameter (or Last-Event-ID for streams).
func parseSince(r *http.Request) (coffer.Seq, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		v = r.Header.Get("Last-Event-ID")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errBadRequest("query: since %q: want a non-negative integer", v)
	}
	return coffer.Seq(n), nil
}

func toChange(e metastore.ChangeEntry) (api.Change, error) {
	c := api.Change{Seq: e.Seq, Tree: e.Tree, Version: e.Version, Head: e.Head, Ops: []api.Op{}}
	if len(e.Ops) > 0 {
		if err := json.Unmarshal(e.Ops, &c.Ops); err != nil {
			return c, fmt.Errorf("server: change %d: ops: %w", e.Seq, err)
		}
	}
	return c, nil
}

func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	since, err := parseSince(r)
	if err != nil {
		return err
	}
	limit := defaultChangesLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxChangesLimit {
			return errBadRequest("query: limit %q: want 1..%d", v, maxChangesLimit)
		}
		limit = n
	}
	latest, err := s.meta.LatestSeq(ctx, sess.Account)
	if err != nil {
		return internalError("changes: latest", err)
	}
	entries, err := s.meta.Changes(ctx, sess.Account, since, limit)
	if err != nil {
		return internalError("changes", err)
	}
	resp := api.ChangesResponse{Changes: make([]api.Change, 0, len(entries)), Latest: latest}
	for _, e := range entries {
		c, err := toChange(e)
		if err != nil {
			return internalError("changes", err)
		}
		resp.Changes = append(resp.Changes, c)
		if e.Seq > resp.Latest {
			resp.Latest = e.Seq
		}
	}
	if n := len(entries); n > 0 && entries[n-1].Seq < resp.Latest {
		resp.More = true
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleChangeStream is the server-sent-event stream of the caller's change feed: one
// "event: change" per commit after since, then live, with a keep-alive comment every 15 s.
func (s *Server) handleChangeStream(w http.ResponseWriter, r *http.Request, sess *metastore.Session) error {
	ctx := r.Context()
	since, err := parseSince(r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	s.metrics.streams.Add(1)
	defer s.metrics.streams.Add(-1)
	// Subscribe before reading the feed so no commit falls between the read and the wait.
	notes, cancel := s.notify.Subscribe(ctx, sess.Account)
	defer cancel()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The first byte tells the client the stream is live.
	fmt.Fprint(bw, ": coffer change stream\n\n")
	if err := flush(); err != nil {
		return nil
	}
	catchUp := func() error {
		for {
			entries, err := s.meta.Changes(ctx, sess.Account, since, maxChangesLimit)
			if err != nil {
				return err
			}
			for _, e := range entries {
				data, _ := json.Marshal(api.ChangeEvent{Seq: e.Seq, Tree: e.Tree, Version: e.Version})
				fmt.Fprintf(bw, "id: %d\nevent: change\ndata: %s\n\n", e.Seq, data)
				since = e.Seq
			}
			if err := flush(); err != nil {
				return err
			}
			if len(entries) < maxChangesLimit {
				return nil
			}
		}
	}
	// Pending drops (anonymous uploads waiting for import) are announced as "event: drops"
	// whenever their number grows.
	var lastDrops int64
	announceDrops := func() error {
		n, err := s.pendingDrops(ctx, sess.Account)
		if err != nil || n < 0 {
			return err
		}
		if n > lastDrops {
			data, _ := json.Marshal(api.DropsEvent{Pending: n})
			fmt.Fprintf(bw, "event: drops\ndata: %s\n\n", data)
			if err := flush(); err != nil {
				return err
			}
		}
		lastDrops = n
		return nil
	}
	if err := catchUp(); err != nil {
		s.log.Debug("change stream ended", "err", err)
		return nil
	}
	if err := announceDrops(); err != nil {
		return nil
	}
	tick := time.NewTicker(keepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case seq, ok := <-notes:
			if !ok {
				return nil
			}
			if seq > since {
				if err := catchUp(); err != nil {
					return nil
				}
			}
			if err := announceDrops(); err != nil {
				return nil
			}
		case <-tick.C:
			fmt.Fprint(bw, ": keep-alive\n\n")
			if err := flush(); err != nil {
				return nil
			}
		}
	}
}
