#!/usr/bin/env bash
# The test suite: `bash scripts/test.sh [extra pytest arguments]`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
say "running: pytest $*"
exec python -m pytest "$@"
