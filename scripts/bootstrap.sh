#!/usr/bin/env bash
# Creates or reuses .venv/ at the repository root and installs what MKE Edge needs.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run on its own. Says what it does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
DEBIAN_PACKAGES=(libusb-1.0-0 libportaudio2 libgl1 libglib2.0-0)

say() { printf '[mke-edge] %s\n' "$*"; }

# 1. Debian libraries behind pyrealsense2 (libusb), sounddevice (PortAudio) and OpenCV (libGL).
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "run:  sudo apt-get install -y ${missing[*]}   (sensor and window features need them)"
  fi
fi

# 2. The virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment at .venv/ with $($PY --version 2>&1)"
  if ! "$PY" -m venv "$VENV"; then
    say "could not create .venv/: install the venv module (sudo apt-get install -y python3-venv) and retry"
    exit 1
  fi
else
  say "reusing the virtual environment at .venv/"
fi

# 3. The package and its dependencies, re-installed only when the packaging files change.
stamp="$VENV/.mke-edge-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing mke-edge and its dependencies into .venv/ (torch is large: the first time takes a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  log="$VENV/pip-install.log"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT[all]" >"$log" 2>&1; then
    grep -v "^WARNING: Location 'file://" "$log" | tail -n 25
    say "the install failed; the whole log is in .venv/pip-install.log"
    exit 1
  fi
  echo "$want" > "$stamp"
  say "installed"
else
  say "dependencies are up to date"
fi

export PATH="$VENV/bin:$PATH"
