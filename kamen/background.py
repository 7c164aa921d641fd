"""Where background work runs.

Real mode (REDIS_URL set): bulk jobs go to RQ, pipeline tasks to Celery.
Embedded default: the same functions run in-process right after the transaction commits
(bulk jobs in a daemon thread so the page that started them can show progress).
"""

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)


def _run_in_thread(func: Callable, args: tuple, kwargs: dict) -> None:
    def target():
        close_old_connections()
        try:
            func(*args, **kwargs)
        except Exception:
            logger.exception("bulk_job.failed", extra={"job": getattr(func, "__name__", "?")})
        finally:
            connection.close()

    threading.Thread(target=target, daemon=True, name=f"kamen-job-{func.__name__}").start()


def enqueue_bulk_job(func: Callable, *args, **kwargs) -> None:
    """Run a merchant-started bulk job (import, export) after the current transaction commits."""

    def enqueue():
        if settings.BACKGROUND_IN_PROCESS:
            _run_in_thread(func, args, kwargs)
            return
        import django_rq

        try:
            django_rq.get_queue("default").enqueue(func, *args, **kwargs)
        except Exception:  # Redis down: the job's row stays pending; the page must not fail
            logger.exception("bulk_job.enqueue_failed", extra={"job": getattr(func, "__name__", "?")})

    transaction.on_commit(enqueue)
