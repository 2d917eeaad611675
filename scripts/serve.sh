#!/usr/bin/env bash
# Install, then start tether on the embedded default (SQLite + local queue in ./tether-data)
# with a demo user, API key and dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/tether serve --demo "$@"
