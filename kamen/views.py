import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception:
        logger.warning("healthz.database_unreachable")
        return "error"


def _queue_status() -> str:
    if settings.BACKGROUND_IN_PROCESS:
        return "in-process"
    try:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        return "ok"
    except Exception:
        logger.warning("healthz.queue_unreachable")
        return "error"


@never_cache
@require_GET
def healthz(request):
    """Liveness and readiness for load balancers and docker compose: 503 when anything is down."""
    status = {"database": _database_status(), "queue": _queue_status()}
    healthy = all(value in {"ok", "in-process"} for value in status.values())
    status["status"] = "ok" if healthy else "error"
    return JsonResponse(status, status=200 if healthy else 503)
