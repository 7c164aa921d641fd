#!/usr/bin/env bash
# make run: migrate, load the demo data, print the logins, serve. With DATABASE_URL and
# REDIS_URL set, the Celery worker and beat and the RQ worker start beside the web server.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
# Links in e-mails point at the address this run serves on, unless SITE_URL says otherwise.
export SITE_URL="${SITE_URL:-http://${HOST}:${PORT}}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-kamen.settings.base}"

if [[ -n "${DATABASE_URL:-}" && -z "${REDIS_URL:-}" ]]; then
    echo "Note: DATABASE_URL is set without REDIS_URL: background work runs in-process, no workers start." >&2
elif [[ -z "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; then
    echo "Note: REDIS_URL is set without DATABASE_URL: the SQLite file is used, and Celery and RQ workers start." >&2
fi

"$PY" manage.py migrate --noinput
"$PY" manage.py load_demo_data

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [[ -n "${REDIS_URL:-}" ]]; then
    # Queues by kind (docs/adr/0014): card-key fulfilment never waits behind a network call.
    "$VENV/bin/celery" -A kamen worker -Q fulfilment,default -n fulfilment@%h --loglevel=INFO --concurrency="${CELERY_CONCURRENCY:-2}" &
    pids+=($!)
    "$VENV/bin/celery" -A kamen worker -Q io -n io@%h --loglevel=INFO --concurrency="${CELERY_IO_CONCURRENCY:-4}" &
    pids+=($!)
    "$VENV/bin/celery" -A kamen beat --loglevel=INFO --schedule="${KAMEN_VAR_DIR:-var}/celerybeat-schedule" &
    pids+=($!)
    "$PY" manage.py rqworker default &
    pids+=($!)
    echo "Background: Celery worker + beat and RQ worker started (REDIS_URL is set)."
else
    "$PY" manage.py run_embedded_scheduler &
    pids+=($!)
    echo "Background: in-process (embedded mode; set DATABASE_URL and REDIS_URL for workers)."
    echo "Scheduled jobs (expiry, sweeper, alerts) run in the embedded scheduler."
fi

echo
echo "Kamen is starting on http://${HOST}:${PORT}/  (Ctrl-C to stop)"
"$VENV/bin/gunicorn" kamen.wsgi:application \
    --bind "${HOST}:${PORT}" --worker-class gthread --workers "${WEB_WORKERS:-1}" --threads 8 \
    --access-logfile - --graceful-timeout 5 &
pids+=($!)
wait "${pids[-1]}"
