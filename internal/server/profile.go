package server

import (
	"net/http"
	"net/http/pprof"
	"runtime"
)

// Sampling of the block and mutex profiles served on the private metrics listener: one blocking
// event per 100 µs spent blocked, one in 20 contended mutex events. Both cost little at these
// rates and show where requests wait under load (doc/SCALING.md, "Load benchmark").
const (
	blockProfileRateNS = 100_000
	mutexProfileFrac   = 20
)

// profileRoutes adds the Go profiler (net/http/pprof) to mux and switches on block and mutex
// sampling for the process. Profiles hold stack traces and counts, never request data, but they
// tell an observer what the server is doing: mount them only on a private listener.
func profileRoutes(mux *http.ServeMux) {
	runtime.SetBlockProfileRate(blockProfileRateNS)
	runtime.SetMutexProfileFraction(mutexProfileFrac)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
