#!/usr/bin/env bash
# The main job on the built-in default data: `bash scripts/demo.sh [extra mke-train arguments]`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
say "running: mke-train --task twomoon $*"
mke-train --task twomoon "$@"
