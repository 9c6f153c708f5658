package client_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"coffer/client"
	"coffer/internal/testenv"
)

// allocated is the bytes allocated so far by this process (client and in-process server).
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// cpuTime is this process's user+system CPU time (client and in-process server together).
func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestShareTenThousandFiles: sharing a folder of 10,000 files (500 in -short and -race runs)
// makes exactly one HPKE seal (the
// tree key, for the one member), never one per file; the member then lists it (verified). It
// logs the time and CPU of the share (conversion included) and of the revocation (key rotation).
func TestShareTenThousandFiles(t *testing.T) {
	n := 10_000
	if testing.Short() || raceEnabled {
		n = 500 // the seal count is what matters; the timing is logged from normal runs
	}
	ctx := context.Background()
	env := testenv.New(t)
	cfg := env.Config(t.TempDir())
	cfg.Server = env.URL
	alice, bob := env.ClientWith(t, cfg, "alice"), env.Client(t, "bob")
	src := filepath.Join(t.TempDir(), "big")
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)))
	}
	if _, err := alice.Upload(ctx, []string{src}, "/", client.TransferOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.VerifyContact(ctx, "bob", bob.Whoami().Fingerprint); err != nil {
		t.Fatal(err)
	}
	seals, cpu, alloc, start := client.HPKESeals(alice), procCPU(), allocated(), time.Now()
	res, err := alice.Share(ctx, "/big", "bob", client.ShareOptions{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	wall, used, mem := time.Since(start), procCPU()-cpu, allocated()-alloc
	if got := client.HPKESeals(alice) - seals; got != 1 || res.Seals != 1 {
		t.Fatalf("sharing %d files made %d HPKE seals, want 1", n, got)
	}
	t.Logf("share of a %d-file folder: %v wall, %v CPU, %d MiB allocated (client+server), %d HPKE seal", n,
		wall.Round(time.Millisecond), used.Round(time.Millisecond), mem>>20, res.Seals)
	if _, err := bob.AcceptShare(ctx, res.Tree.String(), ""); err != nil {
		t.Fatal(err)
	}
	count := 0
	start = time.Now()
	if err := bob.Walk(ctx, "/big", func(e *client.Entry) error {
		if !e.IsDir {
			count++
		}
		return nil
	}); err != nil || count != n {
		t.Fatalf("bob walks %d files: %v", count, err)
	}
	t.Logf("member's verified walk of %d files: %v", n, time.Since(start).Round(time.Millisecond))
	carol := env.Client(t, "carol")
	if _, err := alice.Share(ctx, "/big", "carol", client.ShareOptions{Unverified: true}); err != nil {
		t.Fatal(err)
	}
	seals, cpu, alloc, start = client.HPKESeals(alice), procCPU(), allocated(), time.Now()
	rv, err := alice.Revoke(ctx, "/big", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if got := client.HPKESeals(alice) - seals; got != 1 {
		t.Fatalf("revoking made %d HPKE seals, want 1 (one remaining member)", got)
	}
	t.Logf("revoke with key rotation of %d nodes: %v wall, %v CPU, %d MiB allocated, %d HPKE seal", rv.Nodes,
		time.Since(start).Round(time.Millisecond), (procCPU() - cpu).Round(time.Millisecond), (allocated()-alloc)>>20, rv.Seals)
	_ = carol
}
