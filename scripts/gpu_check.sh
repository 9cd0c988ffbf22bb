#!/usr/bin/env bash
# The GPU check (docs/gpu.md): `bash scripts/gpu_check.sh [--wheels DIR] [options of python -m mke.export.gpu_check]`.
# On a machine with an NVIDIA GPU: finds a Python whose torch sees it, puts this checkout on that Python's
# path, and runs the check, which writes docs/gpu.md. No network: it installs nothing from an index;
# --wheels DIR installs the wheels in DIR (pip --no-index --no-deps) into a temporary folder for this run only.
# Without a CUDA GPU it stops at once, exit status 1, and writes nothing. --cpu-dry-run needs torch only.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
say() { printf '[gpu-check] %s\n' "$*" >&2; }

wheels="" need="cuda" args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || { say "--wheels needs a folder"; exit 2; }; wheels="$2"; shift 2 ;;
    --wheels=*) wheels="${1#--wheels=}"; shift ;;
    --cpu-dry-run|--pack-data|-h|--help) need="torch"; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done

# 1. A Python with torch (and, for the check itself, a CUDA GPU that torch sees). The project's .venv first
#    (a GPU server set up with scripts/bootstrap.sh), then python3 (the GPU image's own, which holds torch).
probe() {  # prints what the Python has; exit 0 when it has what is needed
  "$1" - "$need" <<'EOF' 2>/dev/null
import sys
try:
    import torch
except Exception as exc:
    print(f"no torch ({exc.__class__.__name__})"); sys.exit(3)
cuda = torch.version.cuda
if sys.argv[1] == "torch":
    print(f"torch {torch.__version__}"); sys.exit(0)
if cuda is None:
    print(f"torch {torch.__version__} is a CPU-only build"); sys.exit(4)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (CUDA {cuda}) sees no CUDA GPU"); sys.exit(5)
print(f"torch {torch.__version__} (CUDA {cuda}) sees {torch.cuda.get_device_name(0)}")
EOF
}

candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
[ -x "$ROOT/.venv/bin/python" ] && candidates+=("$ROOT/.venv/bin/python")
command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")
PY="" tried=()
for py in "${candidates[@]}"; do
  if found="$(probe "$py")"; then PY="$py"; say "using $py: $found"; break; fi
  tried+=("$py: ${found:-does not run}")
done
join() { local out="" item; for item in "$@"; do out="${out:+$out; }$item"; done; echo "${out:-no python3 found}"; }
if [ -z "$PY" ]; then
  smi="nvidia-smi: not found"
  command -v nvidia-smi >/dev/null 2>&1 && smi="nvidia-smi: $(nvidia-smi -L 2>&1 | head -n 1)"
  if [ "$need" = "cuda" ]; then
    say "no CUDA GPU: no Python here has a torch that sees one ($(join "${tried[@]}"); $smi)."
    say "nothing was run and nothing written; on a CPU, --cpu-dry-run tests the check's plumbing"
  else
    say "no Python with torch here ($(join "${tried[@]}")): run scripts/bootstrap.sh first"
  fi
  exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# 2. Carried wheels, for this run only.
if [ -n "$wheels" ]; then
  shopt -s nullglob
  files=("$wheels"/*.whl)
  shopt -u nullglob
  if [ ${#files[@]} -eq 0 ]; then say "--wheels $wheels: no .whl files there"; exit 2; fi
  say "installing ${#files[@]} carried wheel(s) from $wheels into a temporary folder (--no-index --no-deps): ${files[*]##*/}"
  if ! "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$TMP/site" "${files[@]}"; then
    say "pip could not install the wheels in $wheels"; exit 2
  fi
  export PYTHONPATH="$TMP/site${PYTHONPATH:+:$PYTHONPATH}"
fi

# 3. This checkout as the `mke` package: already, where it is installed from here (pip install -e), else through
#    a folder of links (mke/train -> train/ …) put first on PYTHONPATH. Nothing is installed into the Python.
where() { "$PY" -c 'import mke.train, pathlib; print(pathlib.Path(mke.train.__file__).resolve().parents[1])' 2>/dev/null; }
if [ "$(where)" = "$ROOT" ]; then
  say "mke-edge is installed from this checkout in that Python"
else
  mkdir -p "$TMP/path/mke"
  for side in runtime train calib export configs; do ln -s "$ROOT/$side" "$TMP/path/mke/$side"; done
  export PYTHONPATH="$TMP/path${PYTHONPATH:+:$PYTHONPATH}"
  if [ "$(where)" != "$ROOT" ]; then
    say "cannot import this checkout as mke in $PY (another mke-edge is installed there?); set PYTHON= to another Python"
    exit 2
  fi
  say "this checkout is on PYTHONPATH as the mke package (links in a temporary folder; nothing installed)"
fi

# 4. The check, from the checkout (its paths — docs/gpu.md, runs/gpu-check, data/cache — are relative to it).
cd "$ROOT"
"$PY" -m mke.export.gpu_check "${args[@]}"
