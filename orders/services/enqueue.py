"""Enqueue pipeline tasks after the current transaction commits.

Real mode sends them to Celery; the embedded default (CELERY_TASK_ALWAYS_EAGER) runs them
in-process right after the commit. If the broker is down at enqueue time the work is not lost:
the order is committed in its new state and the sweeper re-drives it.
"""

import logging

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def run_task_now_or_enqueue(task_name: str, *, queue: str | None = None, **kwargs) -> None:
    """``queue`` overrides the task's route (CELERY_TASK_ROUTES) for this one call."""
    from orders import tasks

    task = getattr(tasks, task_name)
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            task.apply(kwargs=kwargs)
        else:
            task.apply_async(kwargs=kwargs, retry=False, **({"queue": queue} if queue else {}))
    except Exception:
        logger.exception("orders.enqueue_failed", extra={"task": task_name})


def enqueue_after_commit(task_name: str, *, queue: str | None = None, **kwargs) -> None:
    options = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: run_task_now_or_enqueue(task_name, **options, **kwargs))


def fulfilment_queue(order) -> str | None:
    """Where this order's fulfilment runs: an order that may call a supplier (a top-up, or a
    bundle that may hold one) goes to the "io" queue, so card-key deliveries on "fulfilment"
    never wait behind a supplier's answer; None keeps the task's route."""
    from catalog.models import ProductType

    return "io" if order.product_type in (ProductType.DIRECT_RECHARGE, ProductType.BUNDLE) else None
