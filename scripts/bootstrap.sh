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
# Label Studio's annotation editor (Apache-2.0) for the labeling page: the standalone build in
# the label-studio 1.13.1 wheel (the last release that ships it), unpacked into the venv, never
# committed. tether serves it from .venv/share/tether/label-studio-editor (TETHER_EDITOR_DIR).
editor=.venv/share/tether/label-studio-editor
if [ ! -f "$editor/main.js" ]; then
  wheel_dir=$(mktemp -d)
  .venv/bin/python -m pip download --quiet --no-deps label-studio==1.13.1 -d "$wheel_dir"
  rm -rf "$editor.partial" && mkdir -p "$editor.partial/fonts"
  .venv/bin/python - "$wheel_dir"/label_studio-1.13.1-py3-none-any.whl "$editor.partial" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("web/dist/libs/editor/") and not name.endswith("/"):
            target = out / name.removeprefix("web/dist/libs/editor/")
        elif name.startswith("label_studio/core/static_build/fonts/Figtree-"):
            target = out / "fonts" / name.rsplit("/", 1)[1]
        else:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(name))
PY
  rm -rf "$wheel_dir" "$editor" && mv "$editor.partial" "$editor"
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
