"""Delivering the webhook outbox (docs/adr/0019).

An event row is written in the transaction of the change it reports; after the commit a task
is sent to deliver it at once, and a periodic sweep delivers whatever is due (a lost task
message, a retry). Each try: claim the event for a minute (so two workers never send it at the
same moment), commit, POST it signed with the site's webhook secret — no transaction open
across the call — then record the try (response code or error) and either mark it delivered
or schedule the next try with exponential backoff (30 s, 1 min, 2 min … at most 2 h) until 24
hours after the event, then give up. Staff may resend any event by hand.
"""

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.suppliers.base import UrllibTransport
from kamen import api_signing

from .models import WebhookAttempt, WebhookEvent, WebhookStatus
from .services import webhook_secret

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 2 * 3600
GIVE_UP_AFTER = timedelta(hours=24)
CLAIM_SECONDS = 60
WEBHOOK_KEY_ID = "webhook"


def retry_delay(attempts: int) -> int:
    """Seconds before try ``attempts + 1`` (``attempts`` ≥ 1 failed so far)."""
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_RETRY_SECONDS)


def _claim(event_pk: int, *, now, manual: bool) -> WebhookEvent | None:
    with transaction.atomic():
        event = (
            WebhookEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("site")
            .filter(pk=event_pk)
            .first()
        )
        if event is None:
            return None
        if not manual and (event.status != WebhookStatus.PENDING or event.next_attempt_at > now):
            return None
        WebhookEvent.objects.filter(pk=event_pk).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
    return event


def deliver_webhook_event(*, event_pk: int, manual: bool = False, transport=None, now=None) -> WebhookEvent | None:
    """One try of one event (see the module doc); the event as it now stands, or None when it
    was not due (or another worker holds it)."""
    now = now or timezone.now()
    event = _claim(event_pk, now=now, manual=manual)
    if event is None:
        return None
    site = event.site
    body = json.dumps(event.payload, ensure_ascii=False, sort_keys=True).encode()
    status_code, error = None, ""
    started = time.monotonic()
    if not site.webhook_url:
        error = "no callback URL"
    else:
        headers = api_signing.signed_headers(
            key_id=WEBHOOK_KEY_ID, secret=webhook_secret(site), method="POST", url=site.webhook_url, body=body
        )
        headers |= {api_signing.HEADER_EVENT_ID: event.event_id, "Content-Type": "application/json"}
        try:
            response = (transport or UrllibTransport())(
                url=site.webhook_url, body=body, headers=headers, timeout=settings.SUPPLIER_HTTP_TIMEOUT
            )
            status_code = response.status_code
        except Exception as failure:  # noqa: BLE001 — any failure to deliver is logged and retried
            error = f"{failure.__class__.__name__}: {failure}"[:200]
    elapsed = int((time.monotonic() - started) * 1000)
    delivered = status_code is not None and 200 <= status_code < 300
    finished = timezone.now() if now is None else now
    fields = {"attempts": F("attempts") + 1, "last_status_code": status_code}
    if delivered:
        fields |= {"status": WebhookStatus.DELIVERED, "delivered_at": finished}
    elif event.status == WebhookStatus.PENDING:
        next_at = now + timedelta(seconds=retry_delay(event.attempts + 1))
        if next_at > event.created_at + GIVE_UP_AFTER:
            fields |= {"status": WebhookStatus.GAVE_UP}
        else:
            fields |= {"next_attempt_at": next_at}
    with transaction.atomic():
        WebhookAttempt.objects.create(
            event=event, status_code=status_code, error=error, duration_ms=elapsed, is_manual=manual
        )
        WebhookEvent.objects.filter(pk=event.pk).update(**fields)
    if not delivered:
        logger.info("docking.webhook_failed", extra={"event": event.event_id, "status": status_code})
    event.refresh_from_db()
    return event


def due_event_ids(*, now=None, limit: int = 500) -> list[int]:
    return list(
        WebhookEvent.objects.filter(status=WebhookStatus.PENDING, next_attempt_at__lte=now or timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def deliver_due_webhooks(*, now=None, transport=None, limit: int = 500) -> int:
    """Try every due event once; returns how many were delivered."""
    delivered = 0
    for event_pk in due_event_ids(now=now, limit=limit):
        event = deliver_webhook_event(event_pk=event_pk, transport=transport, now=now)
        delivered += bool(event is not None and event.status == WebhookStatus.DELIVERED)
    return delivered


def resend_webhook_event(*, event: WebhookEvent, actor, request=None, transport=None) -> WebhookEvent:
    """Staff resend (any status): one more try now, logged as manual and audited."""
    from django.core.exceptions import PermissionDenied

    from kamen.audit import record_audit

    if actor is None or not actor.has_perm("distribution.resend_webhookevent"):
        raise PermissionDenied("resending a webhook needs distribution.resend_webhookevent")
    record_audit(actor=actor, action="docking.webhook_resent", target=event, request=request)
    return deliver_webhook_event(event_pk=event.pk, manual=True, transport=transport) or event
