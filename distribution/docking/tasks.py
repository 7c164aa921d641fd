"""Docking's background work: webhook delivery (queue "io") and nonce housekeeping."""

from celery import shared_task

from kamen.periodic import exclusive_periodic_job


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook_event_task(event_pk: int):
    """After an event's commit: the event, and a batch of whatever else is due with it."""
    from .webhooks import deliver_webhook_event_soon

    deliver_webhook_event_soon(event_pk=event_pk)


@shared_task(acks_late=True, ignore_result=True)
@exclusive_periodic_job
def deliver_due_webhooks_task():
    from .webhooks import deliver_due_webhooks

    deliver_due_webhooks()


@shared_task(acks_late=True, ignore_result=True)
@exclusive_periodic_job
def purge_api_nonces_task():
    from .services import purge_spent_nonces

    purge_spent_nonces()


@shared_task(acks_late=True, ignore_result=True)
@exclusive_periodic_job
def emit_product_events_task():
    from .product_events import emit_product_events

    emit_product_events()
