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
  # convert: Label Studio's converter for COCO, YOLO and VOC project exports
  .venv/bin/python -m pip install --quiet -e '.[dev,convert]'
  touch "$stamp"
fi
# Test peers from npm (Azurite for the Azure Blob backend's tests), when Node is there.
npm_stamp=node_modules/.tether-installed
if command -v npm >/dev/null && { [ ! -f "$npm_stamp" ] || [ package.json -nt "$npm_stamp" ]; }; then
  npm install --silent --no-audit --no-fund --no-package-lock
  touch "$npm_stamp"
fi
