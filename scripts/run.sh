#!/usr/bin/env bash
# make run: migrate, load the demo data, print the logins, serve. With DATABASE_URL and
# REDIS_URL set, Celery workers (fulfilment,default and io), beat and the RQ worker start beside
# the web server, all supervised by scripts/supervise.py (restarted when they exit or stop
# consuming).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
# Links in e-mails (and the printed logins) point at the address this run serves on, unless
# SITE_URL says otherwise; listening on every interface, this machine's own address.
case "$HOST" in 0.0.0.0 | "::" | "[::]") site_host=127.0.0.1 ;; *) site_host="$HOST" ;; esac
export SITE_URL="${SITE_URL:-http://${site_host}:${PORT}}"
open_at=""
[[ "$SITE_URL" == "http://${HOST}:${PORT}" ]] || open_at="open $SITE_URL/; "
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-kamen.settings.base}"

if [[ -z "${DATABASE_URL:-}" && -z "${KAMEN_PRIVATE_POSTGRES:-}" ]]; then
    # The embedded default's database: a private PostgreSQL under var/postgres, made on the first
    # run, started before migrate and stopped after everything below has stopped (Ctrl-C,
    # SIGTERM, SIGHUP): this script runs again as its child (kamen/private_postgres.py).
    exec "$PY" -m kamen.private_postgres run -- "$PWD/scripts/run.sh" "$@"
fi

if [[ -n "${DATABASE_URL:-}" && -z "${REDIS_URL:-}" ]]; then
    echo "Note: DATABASE_URL is set without REDIS_URL: background work runs in-process, no workers start." >&2
elif [[ -z "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; then
    echo "Note: REDIS_URL is set without DATABASE_URL: the private PostgreSQL under var/postgres is used, and Celery and RQ workers start." >&2
fi

if [[ -n "${DATABASE_URL:-}" && ( -z "${KAMEN_ENCRYPTION_KEYS:-}" || -z "${KAMEN_BLIND_INDEX_KEY:-}" ) ]]; then
    # A local real-mode run: keys for this machine, kept in var/ (0600, never committed).
    eval "$("$PY" scripts/local_keys.py "${KAMEN_VAR_DIR:-var}/keys.json")"
fi

if [[ -n "${DATABASE_URL:-}" ]]; then
    "$PY" scripts/services.py create-database  # a first run needs no createdb
fi
"$PY" manage.py migrate --noinput
# Keys that cannot open the secrets already stored (keys.json made anew beside an older
# database) would sell card keys nobody can read: stop here with what to do instead.
"$PY" manage.py check_vault_keys
"$PY" manage.py load_demo_data

if [[ -n "${REDIS_URL:-}" ]]; then
    # Real mode: every process under scripts/supervise.py, which restarts one that exits (with
    # backoff, logging why) or whose worker stops consuming (its heartbeat file goes stale).
    VAR="${KAMEN_VAR_DIR:-var}"
    RUN_DIR="$VAR/run"
    mkdir -p "$RUN_DIR"
    cores="$(nproc 2>/dev/null || echo 2)"
    # The web server (docs/adr/0014): gthread, one process per core (up to 8) × WEB_THREADS (8).
    # WEB_WORKER_CLASS=sync runs two per core plus one instead (no keep-alive: only behind a
    # buffering proxy); measured, it cost as much CPU per order and served the storm slower.
    # No access log unless WEB_ACCESS_LOG names one ("-": the console).
    web_class="${WEB_WORKER_CLASS:-gthread}"
    if [[ "$web_class" == sync ]]; then
        web_workers="${WEB_WORKERS:-$(( cores < 1 ? 3 : (cores > 8 ? 17 : 2 * cores + 1) ))}"
    else
        web_workers="${WEB_WORKERS:-$(( cores < 1 ? 1 : (cores > 8 ? 8 : cores) ))}"
    fi
    web_flags="--worker-class ${web_class} --workers ${web_workers}"
    # (--threads above 1 would turn a sync worker into gthread)
    [[ "$web_class" != gthread ]] || web_flags+=" --threads ${WEB_THREADS:-8}"
    [[ -z "${WEB_ACCESS_LOG:-}" ]] || web_flags+=" --access-logfile ${WEB_ACCESS_LOG}"
    # Pool processes are replaced after this many tasks or above this resident size (KiB):
    # the main process is bounded by its watchdog (KAMEN_WORKER_MAX_MAIN_RSS_MB).
    worker_bounds=(--max-tasks-per-child="${CELERY_MAX_TASKS_PER_CHILD:-2000}"
                   --max-memory-per-child="${CELERY_MAX_MEMORY_PER_CHILD_KB:-307200}"
                   --without-gossip --without-mingle --without-heartbeat)
    celery_worker="$VENV/bin/celery -A kamen worker --loglevel=INFO ${worker_bounds[*]}"
    echo "Background: supervised Celery workers (fulfilment,default ×${CELERY_FULFILMENT_CONCURRENCY:-2}; io ×${CELERY_IO_CONCURRENCY:-4}), beat and RQ worker; web ×${web_workers} (${web_class})."
    echo
    echo "Kamen is starting on http://${HOST}:${PORT}/  (${open_at}Ctrl-C to stop)"
    exec "$PY" scripts/supervise.py \
        --program "worker-fulfilment=env KAMEN_WORKER_ALIVE_FILE=$RUN_DIR/worker-fulfilment.alive KAMEN_WORKER_STALE_SECONDS=${KAMEN_WORKER_STALE_SECONDS:-30} $celery_worker -Q fulfilment,default -n fulfilment@%h --concurrency=${CELERY_FULFILMENT_CONCURRENCY:-2}" \
        --alive "worker-fulfilment=$RUN_DIR/worker-fulfilment.alive:20" \
        --program "worker-io=env KAMEN_WORKER_ALIVE_FILE=$RUN_DIR/worker-io.alive KAMEN_WORKER_STALE_SECONDS=${KAMEN_WORKER_IO_STALE_SECONDS:-90} $celery_worker -Q io -n io@%h --concurrency=${CELERY_IO_CONCURRENCY:-4}" \
        --alive "worker-io=$RUN_DIR/worker-io.alive:20" \
        --program "beat=$VENV/bin/celery -A kamen beat --loglevel=INFO --schedule=$VAR/celerybeat-schedule" \
        --program "rq=$PY manage.py rqworker default" \
        --program "web=$VENV/bin/gunicorn kamen.wsgi:application --bind ${HOST}:${PORT} ${web_flags} --graceful-timeout 5 --no-control-socket"
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$PY" manage.py run_embedded_scheduler &
pids+=($!)
echo "Background: in-process (embedded mode; set DATABASE_URL and REDIS_URL for workers)."
echo "Scheduled jobs (expiry, sweeper, alerts) run in the embedded scheduler."

echo
echo "Kamen is starting on http://${HOST}:${PORT}/  (${open_at}Ctrl-C to stop)"
access_log=()
[[ -z "${WEB_ACCESS_LOG:-}" ]] || access_log=(--access-logfile "$WEB_ACCESS_LOG")
"$VENV/bin/gunicorn" kamen.wsgi:application \
    --bind "${HOST}:${PORT}" --worker-class gthread --workers "${WEB_WORKERS:-1}" --threads "${WEB_THREADS:-8}" \
    "${access_log[@]}" --graceful-timeout 5 --no-control-socket &
pids+=($!)
wait "${pids[-1]}"
