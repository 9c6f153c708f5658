package server

import (
	"sync"
	"time"

	"coffer"
	"coffer/internal/metastore"
)

// DefaultSessionCacheTTL is how long a node trusts a session it looked up, without asking the
// store again. It bounds how late a revocation made through another node takes effect here.
const DefaultSessionCacheTTL = 2 * time.Second

// maxCachedSessions bounds the session cache; past it, entries older than the TTL are dropped,
// and if that is not enough, all of them.
const maxCachedSessions = 1 << 16

// sessionCache keeps recently verified sessions by token hash, so that a client's stream of
// requests costs one session lookup per TTL instead of one per request.
//
// Staleness is bounded: an entry is used for at most ttl after it was read from the store.
// Revocations made through this node (logout, DELETE /v1/sessions/{id}, password change, expiry)
// drop the entries once the store has deleted the sessions; a lookup that was in flight during a
// revocation is not cached (the generation moved), so it cannot bring a revoked session back. A
// revocation made through another node takes effect here within ttl. The session's expiry is
// checked on every request against the cached copy.
type sessionCache struct {
	ttl time.Duration

	mu        sync.Mutex
	gen       uint64 // incremented by every drop
	byToken   map[[32]byte]cachedSession
	byAccount map[coffer.AccountID]map[[32]byte]struct{}
}

type cachedSession struct {
	sess    metastore.Session
	fetched time.Time
}

func newSessionCache(ttl time.Duration) *sessionCache {
	return &sessionCache{ttl: ttl, byToken: map[[32]byte]cachedSession{},
		byAccount: map[coffer.AccountID]map[[32]byte]struct{}{}}
}

// get returns the cached session for the token hash if it was read from the store less than ttl
// before now.
func (c *sessionCache) get(h [32]byte, now time.Time) (metastore.Session, bool) {
	if c == nil {
		return metastore.Session{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byToken[h]
	if !ok {
		return metastore.Session{}, false
	}
	if age := now.Sub(e.fetched); age >= c.ttl || age < 0 {
		c.removeLocked(h, e.sess.Account)
		return metastore.Session{}, false
	}
	return e.sess, true
}

// begin returns the generation to pass to put for a store lookup about to start.
func (c *sessionCache) begin() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches sess, read from the store at fetched by a lookup that started at generation gen;
// if any session was dropped since, it caches nothing.
func (c *sessionCache) put(sess metastore.Session, fetched time.Time, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.byToken[sess.TokenHash]; !ok && len(c.byToken) >= maxCachedSessions {
		for h, e := range c.byToken {
			if fetched.Sub(e.fetched) >= c.ttl {
				c.removeLocked(h, e.sess.Account)
			}
		}
		if len(c.byToken) >= maxCachedSessions {
			clear(c.byToken)
			clear(c.byAccount)
		}
	}
	c.byToken[sess.TokenHash] = cachedSession{sess: sess, fetched: fetched}
	set := c.byAccount[sess.Account]
	if set == nil {
		set = map[[32]byte]struct{}{}
		c.byAccount[sess.Account] = set
	}
	set[sess.TokenHash] = struct{}{}
}

// update replaces the cached copy of sess (after a touch) without extending its freshness.
func (c *sessionCache) update(sess metastore.Session) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byToken[sess.TokenHash]; ok {
		e.sess = sess
		c.byToken[sess.TokenHash] = e
	}
}

// drop forgets the account's sessions: the one with ID id, or (id == "") all of them except the
// one with ID keep. Call it after the store deleted them.
func (c *sessionCache) drop(acct coffer.AccountID, id, keep string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h := range c.byAccount[acct] {
		sid := c.byToken[h].sess.ID
		if (id != "" && sid == id) || (id == "" && sid != keep) {
			c.removeLocked(h, acct)
		}
	}
}

func (c *sessionCache) removeLocked(h [32]byte, acct coffer.AccountID) {
	delete(c.byToken, h)
	if set := c.byAccount[acct]; set != nil {
		delete(set, h)
		if len(set) == 0 {
			delete(c.byAccount, acct)
		}
	}
}
