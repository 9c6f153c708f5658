package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// node is one running `coffer serve` process.
type node struct {
	url     string
	debug   string // base URL of the private metrics/pprof listener ("" without -profile)
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{} // closed when the process has exited
	waitErr error         // the process's exit status, valid after done
}

// moduleRoot finds the directory holding go.mod, starting at the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("load: no go.mod above the working directory (run from the repository)")
		}
		dir = parent
	}
}

// buildCoffer builds ./cmd/coffer into dir and returns the binary's path.
func buildCoffer(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "coffer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/coffer")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("load: go build ./cmd/coffer: %w\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("load: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNode runs `bin serve args… --listen 127.0.0.1:P` with extra environment, logging to
// logPath, and waits until GET /healthz answers.
func startNode(ctx context.Context, bin string, args, env []string, logPath string, profile bool) (*node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	debug := ""
	if profile {
		dport, err := freePort()
		if err != nil {
			return nil, err
		}
		debug = fmt.Sprintf("127.0.0.1:%d", dport)
		args = append(args, "--metrics-listen", debug)
		debug = "http://" + debug
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("load: node log: %w", err)
	}
	full := append([]string{"serve"}, args...)
	full = append(full, "--listen", addr)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("load: start coffer serve: %w", err)
	}
	n := &node{url: "http://" + addr, debug: debug, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { n.waitErr = cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		select {
		case <-n.done:
			lf.Close()
			tail, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("load: coffer serve exited (%v) before answering; log:\n%s", n.waitErr, lastLines(string(tail), 20))
		case <-ctx.Done():
			n.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("load: coffer serve on %s did not answer /healthz within 30 s", addr)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// peakRSSKiB reads VmHWM (peak resident set size) of pid from /proc, in KiB.
func peakRSSKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("load: peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(v)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("load: peak RSS: no VmHWM in /proc/%d/status", pid)
}

// cpuSeconds reads the user+system CPU time pid has used so far (from /proc/PID/stat; the kernel
// reports it in clock ticks, 100 per second on Linux).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("load: cpu: %w", err)
	}
	// The command name (field 2) may contain spaces: fields after the last ')' start at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("load: cpu: malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("load: cpu: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("load: cpu: malformed /proc stat")
	}
	return float64(ut+st) / 100, nil
}

// stop sends SIGTERM, waits up to 10 s, then kills the process.
func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.log.Close()
}

// s3Target is a parsed COFFER_TEST_S3-style URL: http://KEY:SECRET@host:port.
type s3Target struct {
	endpoint, access, secret string
}

func parseS3(raw string) (s3Target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User == nil {
		return s3Target{}, fmt.Errorf("load: -s3 %q: want http://KEY:SECRET@127.0.0.1:PORT", redact(raw))
	}
	sec, _ := u.User.Password()
	t := s3Target{endpoint: u.Host, access: u.User.Username(), secret: sec}
	if !isLoopback(u.Hostname()) {
		return s3Target{}, fmt.Errorf("load: -s3 endpoint %s is not a loopback address", u.Host)
	}
	return t, nil
}

// redact drops the credentials of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// makeBucket creates a fresh bucket for this run and returns its name.
func makeBucket(ctx context.Context, t s3Target, name string) error {
	mc, err := minio.New(t.endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(t.access, t.secret, ""), Secure: false, Region: "us-east-1"})
	if err != nil {
		return fmt.Errorf("load: s3 client: %w", err)
	}
	if err := mc.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return fmt.Errorf("load: create bucket %s: %w", name, err)
	}
	return nil
}
