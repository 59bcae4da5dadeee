#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup.sh: packages, dockerd, Redis, build, images), then
# runs the whole test suite on the real Redis and the real Docker engine. Extra arguments go to
# vitest, e.g. `bash scripts/test.sh test/unit`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec npx vitest run "$@"
