package server

import (
	"net/http/httptest"
	"testing"
	"time"
)

// secondNode starts another Server on e's stores (the same database: what two nodes behind a
// load balancer share), with e's clock, and returns an env that talks to it.
func secondNode(t *testing.T, e *env, mods ...func(*Config)) *env {
	t.Helper()
	cfg := Config{Meta: e.meta, Blobs: e.blobs, Secret: e.srv.cfg.Secret, Now: e.clock.Now}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &env{t: t, dir: e.dir, srv: srv, meta: e.meta, blobs: e.blobs, clock: e.clock, logs: e.logs}
	n.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); n.ts.Close() })
	return n
}

// TestSessionCacheRevocation: a session revoked through one node is refused by that node at
// once, and by another node (which had it cached) exactly once SessionCacheTTL has passed since
// that node read it from the store, never later. The cache is what lets a node skip the store
// lookup: without it (negative TTL) the other node refuses at once.
func TestSessionCacheRevocation(t *testing.T) {
	const ttl = 2 * time.Second
	for _, tc := range []struct {
		name     string
		cacheTTL time.Duration
		stale    time.Duration // how long node 2 still accepts the revoked session
	}{
		{"cached", ttl, ttl},
		{"uncached", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withTTL := func(c *Config) { c.SessionCacheTTL = tc.cacheTTL }
			e1 := newEnv(t, withTTL)
			e2 := secondNode(t, e1, withTTL)
			u := e1.signup("alice")
			other, _, ae := u.login("other device")
			if other.Token == "" {
				t.Fatalf("login: %+v", ae)
			}
			// Both nodes have seen (and may cache) both sessions.
			for _, e := range []*env{e1, e2} {
				for _, tok := range []string{u.token, other.Token} {
					if st, ae := e.call("GET", "/v1/usage", tok, nil, nil); st != 200 {
						t.Fatalf("usage before revocation: %d %+v", st, ae)
					}
				}
			}
			// Revoke alice's first session through node 1, from the other session.
			if st, ae := e1.call("DELETE", "/v1/sessions/"+u.session, other.Token, nil, nil); st != 204 {
				t.Fatalf("delete session: %d %+v", st, ae)
			}
			if st, _ := e1.call("GET", "/v1/usage", u.token, nil, nil); st != 401 {
				t.Fatalf("node 1 after revocation: %d; want 401 at once", st)
			}
			if tc.stale > 0 {
				e1.clock.Add(tc.stale - time.Millisecond)
				if st, _ := e2.call("GET", "/v1/usage", u.token, nil, nil); st != 200 {
					t.Fatalf("node 2 within the cache TTL: %d; want 200 (the cached session)", st)
				}
				e1.clock.Add(time.Millisecond)
			}
			if st, _ := e2.call("GET", "/v1/usage", u.token, nil, nil); st != 401 {
				t.Fatalf("node 2 %s after revocation: %d; want 401", tc.stale, st)
			}
			// The other session is unaffected on both nodes.
			for _, e := range []*env{e1, e2} {
				if st, ae := e.call("GET", "/v1/usage", other.Token, nil, nil); st != 200 {
					t.Fatalf("other session: %d %+v", st, ae)
				}
			}
		})
	}
}

// TestSessionCacheLogoutAndExpiry: a logout takes effect at once on the node that handled it,
// and expiry is enforced, although the sessions were cached.
func TestSessionCacheLogoutAndExpiry(t *testing.T) {
	e := newEnv(t)
	u := e.signup("bob")
	second, _, _ := u.login("second")
	third, _, _ := u.login("third")
	for _, tok := range []string{u.token, second.Token, third.Token} {
		if st, ae := e.call("GET", "/v1/usage", tok, nil, nil); st != 200 {
			t.Fatalf("usage: %d %+v", st, ae)
		}
	}
	if st, ae := e.call("POST", "/v1/logout", second.Token, nil, nil); st != 204 {
		t.Fatalf("logout: %d %+v", st, ae)
	}
	if st, _ := e.call("GET", "/v1/usage", second.Token, nil, nil); st != 401 {
		t.Fatalf("after logout: %d; want 401", st)
	}
	// Expiry is checked against the cached copy too.
	e.clock.Add(DefaultSessionTTL + time.Second)
	for _, tok := range []string{u.token, third.Token} {
		if st, _ := e.call("GET", "/v1/usage", tok, nil, nil); st != 401 {
			t.Fatalf("expired session: %d; want 401", st)
		}
	}
}

// TestSessionCacheBounded: the cache never grows past maxCachedSessions.
func TestSessionCacheBounded(t *testing.T) {
	c := newSessionCache(time.Minute)
	now := time.Now()
	e := newEnv(t)
	u := e.signup("carol")
	sess, err := e.meta.SessionByToken(t.Context(), tokenHash(u.token))
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxCachedSessions + 10 {
		s := sess
		s.TokenHash[0], s.TokenHash[1], s.TokenHash[2] = byte(i), byte(i>>8), byte(i>>16)
		c.put(s, now, c.begin())
		if n := len(c.byToken); n > maxCachedSessions {
			t.Fatalf("%d entries after %d puts", n, i+1)
		}
	}
	if _, ok := c.get(sess.TokenHash, now.Add(time.Minute)); ok {
		t.Fatal("entry older than the TTL was served")
	}
}

// TestSessionCacheInFlightLookup: a lookup that read the session before a revocation and caches
// it after the revocation's drop must not bring the revoked session back.
func TestSessionCacheInFlightLookup(t *testing.T) {
	c := newSessionCache(time.Minute)
	now := time.Now()
	e := newEnv(t)
	u := e.signup("erin")
	sess, err := e.meta.SessionByToken(t.Context(), tokenHash(u.token))
	if err != nil {
		t.Fatal(err)
	}
	gen := c.begin()                  // a request starts its lookup and reads the session...
	c.drop(sess.Account, sess.ID, "") // ...meanwhile the session is revoked and dropped...
	c.put(sess, now, gen)             // ...and the lookup tries to cache what it read
	if _, ok := c.get(sess.TokenHash, now); ok {
		t.Fatal("a lookup from before the revocation was cached")
	}
	c.put(sess, now, c.begin()) // a lookup after the revocation caches normally
	if _, ok := c.get(sess.TokenHash, now); !ok {
		t.Fatal("a lookup after the revocation was not cached")
	}
}
