"""Scheduled network jobs (Celery beat). Thin: each calls one service and is safe to run twice."""

from celery import shared_task

from kamen.periodic import exclusive_periodic_job


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
@exclusive_periodic_job
def run_clean_out_task():
    from .services.lifecycle import run_clean_out

    run_clean_out()


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
@exclusive_periodic_job
def compute_segment_tags_task():
    from .services.lifecycle import compute_segment_tags

    compute_segment_tags()


@shared_task(
    acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3
)
@exclusive_periodic_job
def run_promotions_task():
    from .services.lifecycle import run_promotions

    run_promotions()


# Docking (docs/adr/0019): webhook delivery and nonce housekeeping live beside their models.
from .docking.tasks import (  # noqa: E402,F401
    deliver_due_webhooks_task,
    deliver_webhook_event_task,
    emit_product_events_task,
    purge_api_nonces_task,
)
