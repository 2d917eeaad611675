#!/usr/bin/env bash
# Installs everything tether and its tests need into ./.venv (idempotent, quiet when done).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tether-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
# Test peers from npm (Azurite for the Azure Blob backend's tests), when Node is there.
npm_stamp=node_modules/.tether-installed
if command -v npm >/dev/null && { [ ! -f "$npm_stamp" ] || [ package.json -nt "$npm_stamp" ]; }; then
  npm install --silent --no-audit --no-fund --no-package-lock
  touch "$npm_stamp"
fi
# Debian's Chromium for the web UI's browser tests (Playwright drives it; it never downloads a
# browser of its own). Installed when missing and this runs as root; else the tests skip loudly.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
