#!/usr/bin/env bash
# The whole test suite: vet, gofmt, the js/wasm build of the format package, every test with -race
# (PostgreSQL and versitygw started by pg.sh and s3.sh), then every fuzz target for 2 s.
# Usage: scripts/test.sh [go test flags...]   (CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l . | grep -v '^testdata/' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== js/wasm build of the format package"
GOOS=js GOARCH=wasm go build ./format/...

echo "== services: PostgreSQL"
# shellcheck source=pg.sh
source scripts/pg.sh

echo "== services: S3 (versitygw)"
# shellcheck source=s3.sh
source scripts/s3.sh

echo "== go test -race"
go test -race -count=1 -timeout 20m "$@" ./...

# Every fuzz target for a short fixed time (issue 3); longer runs: FUZZTIME=1m scripts/fuzz.sh.
# COFFER_FUZZTIME=0 skips this phase (e.g. when iterating locally on one package).
if [ "${COFFER_FUZZTIME:-2s}" != "0" ] && [ $# -eq 0 ]; then
  echo "== fuzz (each target ${COFFER_FUZZTIME:-2s})"
  FUZZTIME=${COFFER_FUZZTIME:-2s} FUZZMINIMIZETIME=1s scripts/fuzz.sh
fi
