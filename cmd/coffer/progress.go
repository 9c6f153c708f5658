package main

import (
	"io"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"coffer/client"
)

// Per-file bars are shown for files of at least barMinSize bytes, at most maxFileBars at once;
// smaller files only move the total bar (10,000 tiny files must not mean 10,000 bars).
const (
	barMinSize  = 1 << 20
	maxFileBars = 8
)

// progressEnabled: bars only when stdout is a terminal and neither --quiet nor --no-progress was
// given (commands with --json never show bars). Scripts and CI logs stay clean.
func (a *app) progressEnabled() bool {
	return !a.quiet && !a.noProgress && isTerminal(a.stdout)
}

// progress implements client.Progress with mpb bars: one per (large) file with name, bytes,
// rate and ETA, plus a total bar when several files are transferred.
type progress struct {
	p     *mpb.Progress
	total *mpb.Bar // nil for a single file

	mu    sync.Mutex
	shown int // file bars currently displayed
}

// newProgress returns the progress display for a transfer of about totalBytes in files files,
// or a disabled one (nil) when bars are off.
func (a *app) newProgress(totalBytes int64, files int) *progress {
	if !a.progressEnabled() {
		return nil
	}
	return newProgressTo(a.stdout, totalBytes, files)
}

// newProgressTo draws bars on w (a terminal).
func newProgressTo(w io.Writer, totalBytes int64, files int, opts ...mpb.ContainerOption) *progress {
	pr := &progress{p: mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(32)}, opts...)...)}
	if files > 1 {
		pr.total = pr.p.AddBar(totalBytes,
			mpb.BarPriority(1<<30), // always the bottom line
			mpb.PrependDecorators(decor.Name("total", decor.WCSyncSpaceR)),
			mpb.AppendDecorators(
				decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
				decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace),
				decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO),
			),
		)
	}
	return pr
}

// client returns pr as a client.Progress (nil interface when disabled).
func (pr *progress) client() client.Progress {
	if pr == nil {
		return nil
	}
	return pr
}

// finish completes the bars and waits for the last render.
func (pr *progress) finish(err error) {
	if pr == nil {
		return
	}
	if pr.total != nil {
		if err != nil {
			pr.total.Abort(false)
		} else {
			pr.total.SetTotal(-1, true)
		}
	}
	pr.p.Wait()
}

// Start implements client.Progress.
func (pr *progress) Start(name string, size int64) client.Tracker {
	t := &tracker{pr: pr}
	pr.mu.Lock()
	show := pr.total == nil || (size >= barMinSize && pr.shown < maxFileBars)
	if show {
		pr.shown++
	}
	pr.mu.Unlock()
	if show {
		t.bar = pr.p.AddBar(size,
			mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(shorten(name, 30), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(
				decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
				decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace),
				decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO),
			),
		)
	}
	return t
}

// tracker implements client.Tracker.
type tracker struct {
	pr   *progress
	bar  *mpb.Bar // nil: counted in the total only
	once sync.Once
}

func (t *tracker) Add(n int64) {
	if t.bar != nil {
		t.bar.IncrInt64(n)
	}
	if t.pr.total != nil {
		t.pr.total.IncrInt64(n)
	}
}

func (t *tracker) Done(err error) {
	t.once.Do(func() {
		if t.bar == nil {
			return
		}
		if err != nil {
			t.bar.Abort(true)
		} else {
			t.bar.SetTotal(-1, true)
		}
		t.pr.mu.Lock()
		t.pr.shown--
		t.pr.mu.Unlock()
	})
}

// shorten trims a name to at most n runes, keeping its end (the most specific part).
func shorten(name string, n int) string {
	r := []rune(name)
	if len(r) <= n {
		return name
	}
	return "…" + string(r[len(r)-n+1:])
}
