#!/usr/bin/env bash
# Install, then run lint, format check, type check and the whole test suite
# (every database test on SQLite and on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
# Coverage of the in-process tests (what `tether serve` processes run is not counted); the
# floor is what the suite reached when it was set, less a point for run-to-run noise.
.venv/bin/python -m pytest -n 2 --cov=tether --cov-report=term:skip-covered --cov-fail-under=88 "$@"
