package server

import (
	"testing"
	"time"

	"coffer/api"
	"coffer/format"
)

// BenchmarkShareRotate10k measures the server side of a key rotation of a shared folder of
// 10,000 files with two accepted members: one request carrying the next roster (epoch + 1), a
// re-key invite per member and a commit giving all 10,002 live nodes a new version (validation,
// roster and invite checks, one transaction, feed fan-out).
func BenchmarkShareRotate10k(b *testing.B) {
	e := newEnv(b)
	alice, bob, carol := e.signup("alice"), e.signup("bob"), e.signup("carol")
	st := e.share(alice, map[*user]uint8{bob: format.ShareRead, carol: format.ShareWrite})
	e.acceptInvite(bob, st, 1)
	e.acceptInvite(carol, st, 1)
	var recs []*format.Record
	for range 10000 {
		recs = append(recs, st.file(st.root, "f"))
	}
	st.commit(recs...)
	path := "/v1/trees/" + st.tree().String() + "/roster"
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		next := *st.roster
		next.Members = append([]format.Member(nil), st.roster.Members...)
		next.Generation++
		next.Epoch++
		raw := signRoster(b, &next, alice.signer)
		st.tk = format.NewTreeKey()
		nextRoster := next
		st.roster = &nextRoster
		invites := [][]byte{invite(b, st, bob, format.ShareRead, next.Epoch), invite(b, st, carol, format.ShareWrite, next.Epoch)}
		var rot []*format.Record
		for id, r := range st.live {
			rot = append(rot, st.next(id, r.Parent))
		}
		commit, _ := st.build(rot...)
		req := api.RosterUpdateRequest{Roster: raw, Invites: invites, Commit: &commit}
		b.StartTimer()
		c0 := cpuTime()
		if code, ae := e.call("POST", path, alice.token, req, nil); code != 200 {
			b.Fatalf("rotate: %d %s", code, ae.Message)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		st.accept(commit)
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkShareCommitFanout measures a one-file commit to a shared folder with 50 accepted
// members (each gets a feed entry), to compare with BenchmarkAccountCommit.
func BenchmarkShareCommitFanout(b *testing.B) {
	e := newEnv(b)
	alice := e.signup("alice")
	members := map[*user]uint8{}
	for i := range 50 {
		members[e.signup("m"+string(rune('a'+i/26))+string(rune('a'+i%26)))] = format.ShareRead
	}
	st := e.share(alice, members)
	for m := range members {
		e.acceptInvite(m, st, 1)
	}
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		req, _ := st.build(st.file(st.root, "f"))
		b.StartTimer()
		c0 := cpuTime()
		if code, ae, _ := st.post(req); code != 200 {
			b.Fatalf("%d %s", code, ae.Message)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		st.accept(req)
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkAccountCommit is the baseline of BenchmarkShareCommitFanout: a one-file commit to an
// account tree.
func BenchmarkAccountCommit(b *testing.B) {
	e := newEnv(b)
	u := e.signup("alice")
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		req, _ := u.build(u.file(u.root, "f"))
		b.StartTimer()
		c0 := cpuTime()
		if code, ae, _ := u.post(req); code != 200 {
			b.Fatalf("%d %s", code, ae.Message)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		u.accept(req)
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
