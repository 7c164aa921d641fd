import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

# Parts the shop can sell without, for a while: payments are recorded in the database and the
# recovery loop drives fulfilment once the broker is back; rate limits count in-process.
DEGRADABLE = ("broker", "cache")


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception:
        logger.warning("healthz.database_unreachable")
        return "error"


def _broker_status() -> str:
    if settings.BACKGROUND_IN_PROCESS:
        return "in-process"
    try:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        return "ok"
    except Exception:
        logger.warning("healthz.broker_unreachable")
        return "error"


def _cache_status() -> str:
    try:
        cache.get("healthz:probe")
        return "ok"
    except Exception:
        logger.warning("healthz.cache_unreachable")
        return "error"


@never_cache
@require_GET
def healthz(request):
    """For load balancers, docker compose and people: what works, and what is degraded.

    200 while the shop can sell — the database answers — with the parts that do not listed
    under ``degraded`` (status "degraded"); 503 only when the database is down."""
    parts = {"database": _database_status(), "broker": _broker_status(), "cache": _cache_status()}
    degraded = [name for name in DEGRADABLE if parts[name] == "error"]
    can_sell = parts["database"] == "ok"
    status = "error" if not can_sell else ("degraded" if degraded else "ok")
    return JsonResponse(parts | {"degraded": degraded, "status": status}, status=200 if can_sell else 503)
