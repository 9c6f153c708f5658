// Package hostile is Coffer's hostile-server test suite: the real client library (and the real
// CLI binary) against a real server that misbehaves, scenario by scenario
// (doc/SECURITY.md), plus a mutation fuzzer over recorded honest sessions, crash-safety tests
// that SIGKILL `coffer serve` during uploads, and a log canary. Its only non-test code is
// ForgeFile and InjectFile (a forged commit, posted or written straight into a store), shared
// with the CLI tests.
package hostile
