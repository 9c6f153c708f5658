// Command bench measures Coffer end to end against the physical limit on this machine and prints
// a Markdown table (the README's benchmark section).
//
//	go run ./bench [-dir DIR] [-big 1GiB] [-small 10000] [-medium 1000] [-list 100000] [-repeat 3]
//
// It builds the coffer binary, starts `coffer serve` on loopback with the embedded defaults
// (SQLite + local disk), signs up a user and times real `coffer put` / `coffer get` / `coffer ls`
// processes. Each transfer is compared with `cp -r` + `sync` of the same data on the same disk in
// the same run. Peak RSS is the child's rusage maximum (CLI) and the server's VmHWM, reset before
// each phase. CPU time (user + system) is the child's rusage (CLI) and the server's
// /proc/PID/stat delta: unlike wall time, other processes' load barely changes it. Downloads are
// byte-compared with the source.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	dir    string
	big    int64
	small  int
	medium int
	list   int
	keep   bool
	repeat int
}

type row struct {
	op, data         string
	coffer, baseline time.Duration
	target           string
	limit            float64 // max ratio (0: absolute target in absLimit)
	absLimit         time.Duration
	rate             string
	cliRSS, srvRSS   int64 // KiB
	cliCPU, srvCPU   time.Duration
}

func main() {
	var c config
	var bigS string
	flag.StringVar(&c.dir, "dir", "", "work directory (default: a new folder under /var/tmp)")
	flag.StringVar(&bigS, "big", "1GiB", "size of the big file (0 skips)")
	flag.IntVar(&c.small, "small", 10000, "number of 4 KiB files (0 skips)")
	flag.IntVar(&c.medium, "medium", 1000, "number of 1 MiB files (0 skips)")
	flag.IntVar(&c.list, "list", 100000, "entries in the listed folder (0 skips)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.IntVar(&c.repeat, "repeat", 3, "rounds of cp+sync, upload and download per set; the table shows medians")
	flag.Parse()
	var err error
	if c.big, err = parseSize(bigS); err != nil {
		fatal(err)
	}
	if err := run(context.Background(), c); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

func run(ctx context.Context, c config) error {
	if c.dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "coffer-bench-")
		if err != nil {
			return err
		}
		c.dir = d
	}
	if !c.keep {
		defer os.RemoveAll(c.dir)
	}
	bin := filepath.Join(c.dir, "coffer")
	logf("building %s", bin)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/coffer").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v: %s", err, out)
	}

	data := filepath.Join(c.dir, "data")
	logf("generating data in %s", data)
	if c.big > 0 {
		if err := genFile(filepath.Join(data, "big", "big.bin"), c.big, 1); err != nil {
			return err
		}
	}
	if c.small > 0 {
		if err := genTree(filepath.Join(data, "small"), c.small, 100, 4<<10, 2); err != nil {
			return err
		}
	}
	if c.medium > 0 {
		if err := genTree(filepath.Join(data, "medium"), c.medium, 10, 1<<20, 3); err != nil {
			return err
		}
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv := exec.CommandContext(ctx, bin, "serve", "--data", filepath.Join(c.dir, "srv"), "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	srvLog, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return err
	}
	srv.Stdout, srv.Stderr = srvLog, srvLog
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := waitHealthy(url); err != nil {
		return err
	}

	env := append(os.Environ(), "COFFER_SERVER="+url, "COFFER_PASSWORD=bench-password-123",
		"COFFER_CONFIG_DIR="+filepath.Join(c.dir, "cfg"))
	perfN := 0
	cli := func(args ...string) (procRun, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		if dir := os.Getenv("BENCH_PERF"); dir != "" { // profile each CLI run: perf record -g
			perfN++
			out := filepath.Join(dir, fmt.Sprintf("%02d-%s.data", perfN, args[0]))
			cmd = exec.CommandContext(ctx, "perf", append([]string{"record", "-q", "-g", "-o", out, "--", bin}, args...)...)
		}
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &out
		s0 := cpuTime(srv.Process.Pid)
		t0 := time.Now()
		err := cmd.Run()
		r := procRun{wall: time.Since(t0), srvCPU: cpuTime(srv.Process.Pid) - s0}
		if err != nil {
			return r, fmt.Errorf("coffer %s: %v: %s", strings.Join(args, " "), err, out.String())
		}
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		r.rss = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
		return r, nil
	}
	if _, err := cli("signup", "bench"); err != nil {
		return err
	}
	logf("start: %s, load average %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAvg())
	defer func() { logf("end: %s, load average %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAvg()) }()

	var rows []row
	sets := []struct {
		name, label string
		limit       float64
		files       int
		bytes       int64
	}{
		{"big", fmt.Sprintf("1 file, %s", human(c.big)), 2.5, 1, c.big},
		{"small", fmt.Sprintf("%d x 4 KiB", c.small), 0, c.small, int64(c.small) * 4 << 10},
		{"medium", fmt.Sprintf("%d x 1 MiB", c.medium), 2.5, c.medium, int64(c.medium) << 20},
	}
	for _, s := range sets {
		if s.bytes == 0 {
			continue // -big 0, -small 0 or -medium 0 skips the set
		}
		src := filepath.Join(data, s.name)
		var bases []time.Duration
		var ups, downs []procRun
		var upSrv, downSrv int64
		for i := range c.repeat {
			// Each round copies the data once and uploads it to a new remote folder (fresh keys,
			// so nothing is deduplicated or skipped), then downloads it into a new local folder.
			// Nothing is deleted until the end: on ext4, creating files in the minute after many
			// deletions costs noticeably more (it scans recently freed inodes), which would
			// penalise whichever run follows a deletion.
			base, err := cpSync(src, filepath.Join(c.dir, fmt.Sprintf("cp-%s-%d", s.name, i+1)))
			if err != nil {
				return err
			}
			remote := "/" + s.name
			if i > 0 {
				remote = fmt.Sprintf("/%s-%d", s.name, i+1)
			}
			resetHWM(srv.Process.Pid)
			up, err := cli("put", "--no-progress", src, remote)
			if err != nil {
				return err
			}
			upSrv = max(upSrv, hwm(srv.Process.Pid))
			dst := filepath.Join(c.dir, fmt.Sprintf("dl-%s-%d", s.name, i+1))
			resetHWM(srv.Process.Pid)
			down, err := cli("get", "--no-progress", remote, dst)
			if err != nil {
				return err
			}
			downSrv = max(downSrv, hwm(srv.Process.Pid))
			if out, err := exec.Command("diff", "-r", "-q", src, dst).CombinedOutput(); err != nil {
				return fmt.Errorf("download of %s differs: %v: %s", s.name, err, out)
			}
			if c.repeat > 1 {
				logf("%s round %d: cp+sync %s, upload %s (%.2fx), download %s (%.2fx)", s.name, i+1, secs(base),
					secs(up.wall), up.wall.Seconds()/base.Seconds(), secs(down.wall), down.wall.Seconds()/base.Seconds())
			}
			bases, ups, downs = append(bases, base), append(ups, up), append(downs, down)
		}
		base := median(bases)
		r := func(op string, runs []procRun, srvRSS int64) row {
			rn := medianRun(runs)
			d := rn.wall
			rw := row{op: op, data: s.label, coffer: d, baseline: base, cliRSS: rn.rss, srvRSS: srvRSS,
				cliCPU: rn.cpu, srvCPU: rn.srvCPU}
			if s.limit > 0 {
				rw.limit, rw.target = s.limit, fmt.Sprintf("<= %.1fx cp+sync", s.limit)
			} else {
				rw.target = ">= 2,500 files/s"
				rw.absLimit = time.Duration(float64(s.files) / 2500 * float64(time.Second))
			}
			rw.rate = rate(s.files, s.bytes, d)
			return rw
		}
		rows = append(rows, r("upload", ups, upSrv), r("download", downs, downSrv))
	}

	if c.list > 0 {
		logf("generating %d entries for the listing benchmark", c.list)
		src := filepath.Join(data, "list")
		if err := genFlat(src, c.list); err != nil {
			return err
		}
		if _, err := cli("put", "--no-progress", src, "/list"); err != nil {
			return err
		}
		resetHWM(srv.Process.Pid)
		rn, err := cli("ls", "/list")
		if err != nil {
			return err
		}
		d := rn.wall
		rows = append(rows, row{op: "list (verified, cold process)", data: fmt.Sprintf("%d entries", c.list),
			coffer: d, target: "<= 3 s", absLimit: 3 * time.Second, cliRSS: rn.rss, srvRSS: hwm(srv.Process.Pid),
			cliCPU: rn.cpu, srvCPU: rn.srvCPU, rate: fmt.Sprintf("%.0f entries/s", float64(c.list)/d.Seconds())})
	}
	printTable(os.Stdout, rows)
	return nil
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| operation | data | coffer | cp+sync | ratio | rate | target | met | CLI peak RSS | server peak RSS | CLI CPU | server CPU |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio, base, met := "-", "-", true
		if r.baseline > 0 {
			q := r.coffer.Seconds() / r.baseline.Seconds()
			ratio, base = fmt.Sprintf("%.2fx", q), secs(r.baseline)
			if r.limit > 0 {
				met = q <= r.limit
			}
		}
		if r.absLimit > 0 {
			met = r.coffer <= r.absLimit
		}
		if r.cliRSS > 100<<10 || r.srvRSS > 150<<10 {
			met = false
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.op, r.data, secs(r.coffer), base,
			ratio, r.rate, r.target, map[bool]string{true: "yes", false: "**no**"}[met],
			fmt.Sprintf("%.0f MiB", float64(r.cliRSS)/1024), fmt.Sprintf("%.0f MiB", float64(r.srvRSS)/1024),
			secs(r.cliCPU), secs(r.srvCPU))
	}
	fmt.Fprintln(w, "\nRSS targets: CLI <= 100 MiB, server <= 150 MiB. CPU: user + system seconds of the CLI process and of the server during it.")
}

// procRun is one CLI process: wall time, peak RSS (KiB), CPU time, and the server's CPU time.
type procRun struct {
	wall, cpu, srvCPU time.Duration
	rss               int64
}

// median returns the median of ds (the lower middle one of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianRun is the run with the median wall time, with the highest peak RSS of all runs.
func medianRun(runs []procRun) procRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b procRun) int { return cmp.Compare(a.wall, b.wall) })
	m := s[(len(s)-1)/2]
	for _, r := range runs {
		m.rss = max(m.rss, r.rss)
	}
	return m
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func rate(files int, bytes int64, d time.Duration) string {
	if files > 1 {
		return fmt.Sprintf("%.0f files/s, %.0f MB/s", float64(files)/d.Seconds(), float64(bytes)/1e6/d.Seconds())
	}
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/1e6/d.Seconds())
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// cpSync copies src into dst with cp -r and flushes with sync, returning the time of both.
func cpSync(src, dst string) (time.Duration, error) {
	_ = os.RemoveAll(dst)
	if err := exec.Command("sync").Run(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cp: %v: %s", err, out)
	}
	if err := exec.Command("sync").Run(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func genFile(path string, size int64, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed)})
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, r, size); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func genTree(root string, n, dirs int, size int64, seed uint64) error {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i%dirs))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func genFlat(root string, n int) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("entry-%06d.txt", i)), []byte{byte(i)}, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitHealthy(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("server did not become healthy within 30 s")
}

// cpuTime returns the user + system CPU time pid has used (Linux /proc; 0 elsewhere).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime: field 14 of the whole line
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime: field 15
	const ticks = 100                        // USER_HZ, 100 on every Linux platform Go supports
	return time.Duration(ut+st) * time.Second / ticks
}

// loadAvg returns the 1-, 5- and 15-minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// resetHWM resets the peak RSS of pid (Linux: writing 5 to clear_refs).
func resetHWM(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// hwm returns the peak RSS of pid in KiB.
func hwm(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
