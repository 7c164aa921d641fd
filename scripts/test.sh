#!/usr/bin/env bash
# make test: the whole suite on PostgreSQL and Redis. Uses the servers on 127.0.0.1 (or
# DATABASE_URL / REDIS_URL); when none answers but the server programs are installed, starts
# throwaway ones in a temporary directory; otherwise says how to get them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kamen}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
export DJANGO_SETTINGS_MODULE=kamen.settings.test

tmp=""
pg_started=""
redis_started=""
cleanup() {
    if [[ -n "$pg_started" ]]; then "$pg_started/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    if [[ -n "$redis_started" ]]; then kill "$redis_started" 2>/dev/null || true; fi
    if [[ -n "$tmp" ]]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if ! "$PY" scripts/services.py check-postgres; then
    pg_bin="$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1 || true)")"
    if [[ ! -x "$pg_bin/initdb" ]]; then
        echo "make test needs PostgreSQL: none answers at $DATABASE_URL and no server programs are installed." >&2
        echo "Install it (Debian: apt-get install postgresql) or point DATABASE_URL at a server." >&2
        exit 2
    fi
    tmp="${tmp:-$(mktemp -d)}"
    port="$(free_port)"
    echo "Starting a throwaway PostgreSQL on 127.0.0.1:$port ($tmp/pg)"
    run_as=()
    if [[ "$(id -u)" == "0" ]]; then chown -R nobody "$tmp" 2>/dev/null || true; chmod 777 "$tmp"; run_as=(runuser -u nobody --); fi
    "${run_as[@]}" "$pg_bin/initdb" -D "$tmp/pg" -U postgres --auth=trust >/dev/null
    "${run_as[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg" -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off" -l "$tmp/pg.log" -w start >/dev/null
    pg_started="$pg_bin"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/kamen"
fi

if ! "$PY" scripts/services.py check-redis; then
    if ! command -v redis-server >/dev/null; then
        echo "make test needs Redis: none answers at $REDIS_URL and redis-server is not installed." >&2
        echo "Install it (Debian: apt-get install redis-server) or point REDIS_URL at a server." >&2
        exit 2
    fi
    tmp="${tmp:-$(mktemp -d)}"
    port="$(free_port)"
    echo "Starting a throwaway Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    redis_started=$!
    export REDIS_URL="redis://127.0.0.1:$port/15"
    "$PY" scripts/services.py wait-redis
fi

"$PY" manage.py makemigrations --check --dry-run >/dev/null || {
    echo "Model changes without a migration: run manage.py makemigrations." >&2
    exit 1
}
# The apps' layers (docs/architecture.md): a backwards import fails the run before any test.
"$VENV/bin/lint-imports" --no-cache || {
    echo "An import breaks the apps' layers or who may import a models module: see docs/architecture.md." >&2
    exit 1
}
"$PY" -m pytest "$@"
