#!/usr/bin/env bash
# docker compose scaled out (issue 15 §4, docs/adr/0015-beyond-one-machine.md): SCALE (2) web
# containers, fulfilment and io workers and beats, behind Caddy and PgBouncer (transaction mode),
# then the storm's invariants and Caddy's balancing over the web replicas.
#
# Needs a docker daemon with compose v2 and a filled-in .env (cp .env.example .env). Builds and
# starts the stack (KAMEN_SITE_DOMAIN=localhost: Caddy's local CA), runs bench/scaled_check.py in
# a one-off container on the compose network, prints PgBouncer's pools, and leaves the stack
# running (`docker compose down`; add -v to drop its volumes). Exit status 1 when an invariant
# breaks or a replica got no requests.
#
#     scripts/check_scaled.sh                  # 200 orders, 20 buyers
#     ORDERS=1000 BUYERS=50 SCALE=3 scripts/check_scaled.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS="${ORDERS:-200}"
BUYERS="${BUYERS:-20}"
SCALE="${SCALE:-2}"
export KAMEN_SITE_DOMAIN=localhost

override="$(mktemp --suffix=.yml)"
trap 'rm -f "$override"' EXIT
# For the check only: the sandbox cashier on, and the gateway's notifications and the buyers
# reaching web over the compose network (http://web:8000; TLS is the proxy's business).
cat >"$override" <<'YAML'
x-check: &check
  SANDBOX_GATEWAY_ENABLED: "1"
  SITE_URL: http://web:8000
  SECURE_SSL_REDIRECT: "0"
  ALLOWED_HOSTS: web,localhost,127.0.0.1
services:
  web: {environment: *check}
  celery-worker: {environment: *check}
  celery-worker-io: {environment: *check}
  celery-beat: {environment: *check}
  rq-worker: {environment: *check}
  storage-init: {environment: *check}
  migrate: {environment: *check}
YAML
compose=(docker compose -f docker-compose.yml -f "$override")

"${compose[@]}" up -d --build \
    --scale web="$SCALE" --scale celery-worker="$SCALE" --scale celery-worker-io="$SCALE" --scale celery-beat="$SCALE"
deadline=$((SECONDS + 300))
until [[ "$("${compose[@]}" ps web --format '{{.Health}}' | grep -cx healthy)" -ge "$SCALE" ]]; do
    if ((SECONDS > deadline)); then
        echo "the web containers were not healthy within 300 s" >&2
        "${compose[@]}" ps >&2
        exit 1
    fi
    sleep 3
done
echo "--- containers per service"
"${compose[@]}" ps --format '{{.Service}}' | sort | uniq -c

echo "--- the storm through every web replica (compose DNS), workers and beats of every replica"
status=0
"${compose[@]}" run --rm --no-deps -T web python -m bench.scaled_check \
    --base-url http://web:8000 --orders "$ORDERS" --buyers "$BUYERS" || status=1

echo "--- Caddy balances over the web replicas"
mark="caddy-check-$$"
for _ in $(seq 1 $((SCALE * 20))); do
    curl -ks -o /dev/null --resolve localhost:443:127.0.0.1 "https://localhost/healthz?$mark"
done
for container in $("${compose[@]}" ps -q web); do
    name="$(docker inspect --format '{{.Name}}' "$container")"
    served="$(docker logs "$container" 2>&1 | grep -c "$mark" || true)"
    echo "$name: $served of $((SCALE * 20)) requests"
    [[ "$served" -gt 0 ]] || status=1
done

echo "--- PgBouncer's pools"
"${compose[@]}" exec -T pgbouncer sh -c \
    'pw=${DATABASE_URL#*://kamen:}; PGPASSWORD=${pw%%@*} psql -h 127.0.0.1 -U kamen -d pgbouncer -c "SHOW POOLS"' || true

exit "$status"
