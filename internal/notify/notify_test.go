package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"coffer"
)

// freshDB creates an empty database on COFFER_TEST_POSTGRES (dropped at cleanup) and returns its
// DSN. Without the variable the test is skipped, except in CI.
func freshDB(t *testing.T) string {
	t.Helper()
	base := os.Getenv("COFFER_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("COFFER_TEST_POSTGRES is required in CI (source scripts/pg.sh)")
		}
		t.Skip("COFFER_TEST_POSTGRES is not set; skipping (source scripts/pg.sh to run it)")
	}
	var b [6]byte
	rand.Read(b[:])
	name := "coffer_notify_" + hex.EncodeToString(b[:])
	exec(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { exec(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func open(t *testing.T, dsn string) *PG {
	t.Helper()
	p, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func recv(t *testing.T, ch <-chan coffer.Seq, within time.Duration) coffer.Seq {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return s
	case <-time.After(within):
		t.Fatal("no notification in time")
	}
	return 0
}

func TestPublishAcrossInstancesAndReconnect(t *testing.T) {
	dsn := freshDB(t)
	a, b := open(t, dsn), open(t, dsn)
	acct, other := coffer.NewAccountID(), coffer.NewAccountID()
	ch, cancel := a.Subscribe(t.Context(), acct)
	defer cancel()
	otherCh, cancelOther := a.Subscribe(t.Context(), other)
	defer cancelOther()

	if err := b.Publish(t.Context(), acct, 7); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, ch, 2*time.Second); s != 7 {
		t.Fatalf("got seq %d, want 7", s)
	}
	select {
	case s := <-otherCh:
		t.Fatalf("another account's subscriber got %d", s)
	case <-time.After(100 * time.Millisecond):
	}

	// Kill a's LISTEN connection: it reconnects, tells every subscriber to resync, and receives
	// notifications again.
	exec(t, dsn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`)
	if s := recv(t, ch, 10*time.Second); s != Resync {
		t.Fatalf("after reconnect got %d, want Resync", s)
	}
	recv(t, otherCh, time.Second) // every subscriber resyncs
	deadline := time.Now().Add(10 * time.Second)
	for !a.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Publish(t.Context(), acct, 9); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, ch, 2*time.Second); s != 9 {
		t.Fatalf("after reconnect got seq %d, want 9", s)
	}

	// Closing ends subscriptions.
	a.Close()
	if _, ok := <-ch; ok {
		t.Fatal("subscription open after Close")
	}
}

func TestPayload(t *testing.T) {
	acct := coffer.NewAccountID()
	got, seq, ok := parsePayload(hex.EncodeToString(acct[:]) + ":42")
	if !ok || got != acct || seq != 42 {
		t.Fatalf("parse: %v %v %v", got, seq, ok)
	}
	for _, bad := range []string{"", "x:1", hex.EncodeToString(acct[:]), hex.EncodeToString(acct[:]) + ":-1", "zz" + hex.EncodeToString(acct[1:]) + ":1"} {
		if _, _, ok := parsePayload(bad); ok {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}

func TestChallengesSecretAndLocks(t *testing.T) {
	dsn := freshDB(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()

	var c [32]byte
	rand.Read(c[:])
	exp := time.Now().Add(time.Minute)
	fresh, err := a.SpendChallenge(ctx, c, exp)
	if err != nil || !fresh {
		t.Fatalf("first spend: %v %v", fresh, err)
	}
	for _, p := range []*PG{a, b} {
		if fresh, err := p.SpendChallenge(ctx, c, exp); err != nil || fresh {
			t.Fatalf("second spend: fresh=%v err=%v", fresh, err)
		}
	}

	sa, err := a.Secret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Secret(ctx)
	if err != nil || len(sa) != 32 || string(sa) != string(sb) {
		t.Fatalf("secrets differ or malformed: %x %x %v", sa, sb, err)
	}

	// The lock excludes across instances; other partitions are independent.
	unlock, err := a.LockBlob(ctx, 0x42)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		u, err := b.LockBlob(context.Background(), 0x42)
		if err != nil {
			t.Error(err)
			return
		}
		got.Store(true)
		u()
	}()
	u2, err := b.LockBlob(ctx, 0x43)
	if err != nil {
		t.Fatal(err)
	}
	u2()
	time.Sleep(200 * time.Millisecond)
	if got.Load() {
		t.Fatal("b took lock 0x42 while a held it")
	}
	unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not get the lock after a released it")
	}
	if !got.Load() {
		t.Fatal("b never got the lock")
	}
	// A cancelled wait returns an error and leaves the lock usable.
	unlock, _ = a.LockBlob(ctx, 0x44)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.LockBlob(cctx, 0x44); err == nil {
		t.Fatal("LockBlob with an expiring context succeeded while the lock is held")
	}
	unlock()
	u3, err := b.LockBlob(ctx, 0x44)
	if err != nil {
		t.Fatal(err)
	}
	u3()
}
