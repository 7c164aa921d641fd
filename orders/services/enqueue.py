"""Enqueue pipeline tasks after the current transaction commits.

Real mode sends them to Celery; the embedded default (CELERY_TASK_ALWAYS_EAGER) runs them
in-process right after the commit. If the broker is down at enqueue time the work is not lost:
the order is committed in its new state and the sweeper re-drives it.
"""

import logging

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def run_task_now_or_enqueue(task_name: str, **kwargs) -> None:
    from orders import tasks

    task = getattr(tasks, task_name)
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            task.apply(kwargs=kwargs)
        else:
            task.apply_async(kwargs=kwargs, retry=False)
    except Exception:
        logger.exception("orders.enqueue_failed", extra={"task": task_name})


def enqueue_after_commit(task_name: str, **kwargs) -> None:
    transaction.on_commit(lambda: run_task_now_or_enqueue(task_name, **kwargs))
