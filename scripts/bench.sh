#!/usr/bin/env bash
# make bench: benchmarks on PostgreSQL; prints a table and writes bench-results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kamen}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/14}"
export DJANGO_SETTINGS_MODULE=kamen.settings.test
exec "$VENV/bin/python" -m bench "$@"
