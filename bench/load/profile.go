package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"
)

// startProfiles fetches, from every node's private pprof listener, a CPU, a block and a mutex
// profile covering a phase of length d (all but its first and last second) into c.profile, named
// MODE-RUNID-PHASE-nodeN.{cpu,block,mutex}.pprof, and writes the load generator's own CPU
// profile of the same span as MODE-RUNID-PHASE-load.cpu.pprof. The returned function waits for
// them. Without -profile it does nothing. Read them with `go tool pprof BIN FILE`.
func startProfiles(ctx context.Context, c config, mode, runID, phase string, d time.Duration, nodes []*node) func() {
	if c.profile == "" {
		return func() {}
	}
	if err := os.MkdirAll(c.profile, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "load: profile:", err)
		return func() {}
	}
	secs := max(int((d-2*time.Second)/time.Second), 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		path := filepath.Join(c.profile, fmt.Sprintf("%s-%s-%s-load.cpu.pprof", mode, runID, phase))
		if err := selfProfile(ctx, path, time.Duration(secs)*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "load: profile:", err)
		}
	}()
	for i, n := range nodes {
		for _, kind := range []string{"profile", "block", "mutex"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := map[string]string{"profile": "cpu"}[kind]
				if name == "" {
					name = kind
				}
				path := filepath.Join(c.profile, fmt.Sprintf("%s-%s-%s-node%d.%s.pprof", mode, runID, phase, i+1, name))
				if err := fetchProfile(ctx, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", n.debug, kind, secs), path); err != nil {
					fmt.Fprintln(os.Stderr, "load: profile:", err)
				}
			}()
		}
	}
	return wg.Wait
}

// selfProfile writes the load generator's CPU profile of d, starting a second from now, to path.
func selfProfile(ctx context.Context, path string, d time.Duration) error {
	time.Sleep(time.Second) // skip the phase's ramp-up
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	pprof.StopCPUProfile()
	return f.Close()
}

func fetchProfile(ctx context.Context, url, path string) error {
	time.Sleep(time.Second) // skip the phase's ramp-up
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// private reports whether the nodes need a private metrics listener (-profile, -phases).
func (c *config) private() bool { return c.profile != "" || c.phases }

// commitPhases reads every node's commit phase report (GET /debug/commit-phases) and, with
// reset, starts a new sample. A node that cannot answer gets its error as its report.
func commitPhases(ctx context.Context, nodes []*node, reset bool) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		u := n.debug + "/debug/commit-phases"
		if reset {
			u += "?reset=1"
		}
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			out[i] = err.Error()
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out[i] = err.Error()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			out[i] = err.Error()
		case resp.StatusCode != http.StatusOK:
			out[i] = fmt.Sprintf("%s: HTTP %d: %s", u, resp.StatusCode, b)
		default:
			out[i] = string(b)
		}
	}
	return out
}
