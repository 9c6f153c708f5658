#!/usr/bin/env bash
# The whole test suite: vet, the js/wasm build of the format package, and every test with -race.
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
