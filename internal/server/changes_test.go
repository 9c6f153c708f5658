package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
)

func TestChangeFeed(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	f := u.folder(u.root, "a")
	u.commit(f)
	u.commit(u.tomb(f.Node))

	var ch api.ChangesResponse
	if st, ae := e.call("GET", "/v1/changes", u.token, nil, &ch); st != 200 {
		t.Fatalf("changes: %d %+v", st, ae)
	}
	if len(ch.Changes) != 3 || ch.Latest != 3 || ch.More {
		t.Fatalf("changes: %+v", ch)
	}
	for i, c := range ch.Changes {
		if c.Seq != coffer.Seq(i+1) || c.Version != uint64(i+1) || c.Tree != u.tree() || len(c.Head) == 0 {
			t.Fatalf("change %d: %+v", i, c)
		}
	}
	if ops := ch.Changes[0].Ops; len(ops) != 2 || ops[0].Parent != (coffer.NodeID{}) {
		t.Fatalf("signup ops: %+v", ops)
	}
	if ops := ch.Changes[2].Ops; len(ops) != 1 || !ops[0].Tombstone || ops[0].Node != f.Node || ops[0].Parent != u.root {
		t.Fatalf("tombstone op: %+v", ops)
	}
	if st, _ := e.call("GET", "/v1/changes?since=1&limit=1", u.token, nil, &ch); st != 200 || len(ch.Changes) != 1 || ch.Changes[0].Seq != 2 || !ch.More {
		t.Fatalf("paged: %+v", ch)
	}
	if st, _ := e.call("GET", "/v1/changes?since=3", u.token, nil, &ch); st != 200 || len(ch.Changes) != 0 || ch.More || ch.Latest != 3 {
		t.Fatalf("caught up: %+v", ch)
	}
	st, ae := e.call("GET", "/v1/changes?since=-1", u.token, nil, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	st, ae = e.call("GET", "/v1/changes?limit=0", u.token, nil, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)

	// Feeds are per account.
	b := e.signup("bob")
	if st, _ := e.call("GET", "/v1/changes", b.token, nil, &ch); st != 200 || len(ch.Changes) != 1 || ch.Changes[0].Tree != b.tree() {
		t.Fatalf("bob's feed: %+v", ch)
	}
}

// sseEvents reads "event: change" data payloads from a stream into a channel.
func sseEvents(t *testing.T, resp *http.Response) <-chan api.ChangeEvent {
	out := make(chan api.ChangeEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "change":
				var ev api.ChangeEvent
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					t.Errorf("bad event data %q", line)
					return
				}
				out <- ev
			case line == "":
				event = ""
			}
		}
	}()
	return out
}

func TestChangeStream(t *testing.T) {
	e := newEnv(t)
	u := e.signup("alice")
	u.commit(u.folder(u.root, "a"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/v1/changes/stream?since=1", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sseEvents(t, resp)
	next := func() api.ChangeEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return api.ChangeEvent{}
	}
	// Catch-up from since=1, then a live commit.
	if ev := next(); ev.Seq != 2 || ev.Tree != u.tree() || ev.Version != 2 {
		t.Fatalf("catch-up event %+v", ev)
	}
	u.commit(u.folder(u.root, "b"))
	if ev := next(); ev.Seq != 3 || ev.Version != 3 {
		t.Fatalf("live event %+v", ev)
	}
	// Another account's commit does not show up; ours does.
	b := e.signup("bob")
	b.commit(b.folder(b.root, "x"))
	u.commit(u.folder(u.root, "c"))
	if ev := next(); ev.Seq != 4 {
		t.Fatalf("event %+v", ev)
	}
	// Closing the server ends the stream.
	e.srv.Close()
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("unexpected event after close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not closed by Close")
	}
}

func TestHub(t *testing.T) {
	h := NewHub()
	ctx := context.Background()
	a, b := coffer.NewAccountID(), coffer.NewAccountID()
	chA, cancelA := h.Subscribe(ctx, a)
	chB, cancelB := h.Subscribe(ctx, b)
	defer cancelB()
	// Values coalesce to the latest and never block the publisher.
	for i := 1; i <= 5; i++ {
		h.Publish(ctx, a, coffer.Seq(i))
	}
	if got := <-chA; got != 5 {
		t.Fatalf("got %d, want 5", got)
	}
	select {
	case v := <-chB:
		t.Fatalf("b got %d", v)
	default:
	}
	cancelA()
	if _, ok := <-chA; ok {
		t.Fatal("channel open after cancel")
	}
	cancelA() // idempotent
	h.Publish(ctx, a, 6)

	cctx, ccancel := context.WithCancel(ctx)
	chC, cancelC := h.Subscribe(cctx, a)
	defer cancelC()
	ccancel()
	select {
	case _, ok := <-chC:
		if ok {
			t.Fatal("value after ctx cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ctx cancel did not close the subscription")
	}
	h.Close()
	if _, ok := <-chB; ok {
		t.Fatal("open after Close")
	}
	chD, _ := h.Subscribe(ctx, a)
	if _, ok := <-chD; ok {
		t.Fatal("subscribe after Close must return a closed channel")
	}
}
