"""Delivering the webhook outbox (docs/adr/0019).

An event row is written in the transaction of the change it reports; after the commit a task
is sent to deliver it at once, and a periodic sweep delivers whatever is due (a lost task
message, a retry). Delivery works in batches:

1. **Claim** up to ``BATCH_SIZE`` due events in one short transaction, ``FOR UPDATE SKIP
   LOCKED`` (two workers never take the same row, and neither waits for the other), pushing
   their next try a minute ahead: a worker that dies after the claim leaves the events due
   again a minute later (at-least-once; each event keeps its id for the receiver's dedup).
2. **Send** them signed with each site's webhook secret (decrypted once per site and batch),
   ``SEND_CONCURRENCY`` at a time over a pooled keep-alive HTTP connection per receiver — with
   no transaction open across the calls.
3. **Record** every try in one transaction: one delivery-log row each (response code or error,
   duration) and the events marked delivered, or given their next try with exponential backoff
   (30 s, 1 min, 2 min … at most 2 h) until 24 hours after the event, then given up.

Staff may resend any event by hand (one event, any status, logged as manual and audited).
"""

import functools
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from catalog.suppliers.base import TransportResponse, TransportTimeout, TransportUnreachable
from kamen import api_signing
from kamen.db import fetch_rows

from .. import sql
from .models import DockingSite, WebhookEvent, WebhookStatus
from .services import webhook_secret

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 2 * 3600
GIVE_UP_AFTER = timedelta(hours=24)
CLAIM_SECONDS = 60
WEBHOOK_KEY_ID = "webhook"
BATCH_SIZE = 100
SEND_CONCURRENCY = 32


def retry_delay(attempts: int) -> int:
    """Seconds before try ``attempts + 1`` (``attempts`` ≥ 1 failed so far)."""
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_RETRY_SECONDS)


# --- HTTP ----------------------------------------------------------------------------------------
class PooledTransport:
    """POST over kept-alive connections: each sender thread keeps one connection per receiver
    (the standard library's ``http.client``, about half the CPU of a general HTTP client per
    request), so a worker delivering many events opens a connection once, not once per event.
    A kept connection the receiver has closed meanwhile is reopened and the event sent once
    more at once (receivers drop repeats by event id). No redirects followed (a 3xx is not a
    delivery), no other retries here (the outbox retries)."""

    def __init__(self):
        self._local = threading.local()

    def _connection(self, scheme: str, host: str, port: int | None, timeout: float):
        connections = self._local.__dict__.setdefault("connections", {})
        key = (scheme, host, port)
        connection = connections.get(key)
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context())
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            connections[key] = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection, connections, key

    def __call__(self, *, url: str, body: bytes, headers: dict[str, str], timeout: float) -> TransportResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportUnreachable(f"not an http(s) URL: {parts.scheme}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for fresh_try in (False, True):
            connection, connections, key = self._connection(parts.scheme, parts.hostname, parts.port, timeout)
            reused = connection.sock is not None
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read(64 * 1024)
                if response.will_close:
                    connection.close()
                return TransportResponse(status_code=response.status, body=answer)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                connection.close()
                connections.pop(key, None)
                if reused and not fresh_try:
                    continue  # the receiver closed a kept connection: once more on a new one
                raise TransportTimeout(str(error) or error.__class__.__name__) from None
            except (ConnectionRefusedError, socket.gaierror) as error:
                connection.close()
                connections.pop(key, None)
                raise TransportUnreachable(str(error)) from None
            except (TimeoutError, OSError, http.client.HTTPException) as error:
                connection.close()
                connections.pop(key, None)
                raise TransportTimeout(str(error) or error.__class__.__name__) from None
        raise TransportTimeout("connection closed")  # pragma: no cover - the loop returns or raises


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


_lock = threading.Lock()
_per_process: dict = {}


def _process_tools() -> tuple[PooledTransport, ThreadPoolExecutor]:
    """This process's connection pool and sender threads, made on first use after a fork (a
    Celery pool process never shares its parent's sockets)."""
    with _lock:
        if _per_process.get("pid") != os.getpid():
            _per_process.clear()
            _per_process.update(
                pid=os.getpid(),
                transport=PooledTransport(),
                executor=ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="webhook"),
            )
        return _per_process["transport"], _per_process["executor"]


# --- claim, send, record -------------------------------------------------------------------------
@dataclass
class _Event:
    """A claimed event with what sending it needs of its site."""

    pk: int
    event_id: str
    site_id: int
    payload: dict
    status: str
    attempts: int
    created_at: object
    webhook_url: str
    secret_blob: bytes | None
    secret_key_id: str


@dataclass
class _Try:
    event: _Event
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _claim(*, now, limit: int, event_pks=None, manual: bool = False) -> list[_Event]:
    """Take up to ``limit`` due events (or the given ones, whatever their state, for a manual
    resend) for CLAIM_SECONDS, skipping rows another worker holds: one statement."""
    if manual:
        statement = sql.CLAIM_ANY_OF
    else:
        statement = sql.CLAIM_DUE if event_pks is None else sql.CLAIM_DUE_OF
    rows = fetch_rows(
        statement,
        {
            "now": now,
            "until": now + timedelta(seconds=CLAIM_SECONDS),
            "limit": limit,
            "pks": list(event_pks or ()),
        },
    )
    events = [_Event(*row) for row in rows]
    for event in events:  # jsonb arrives as text here (Django loads JSON itself)
        if isinstance(event.payload, str):
            event.payload = json.loads(event.payload)
    events.sort(key=lambda event: event.pk)
    return events


def _secrets(events: list[_Event]) -> dict[int, str]:
    """Each site's webhook secret, decrypted once per batch."""
    found: dict[int, str] = {}
    for event in events:
        if event.site_id not in found:
            site = DockingSite(
                pk=event.site_id,
                webhook_secret_ciphertext=event.secret_blob,
                webhook_secret_key_id=event.secret_key_id,
            )
            found[event.site_id] = webhook_secret(site)
    return found


def _send(attempt: _Try, secret: str, transport) -> _Try:
    event = attempt.event
    if not event.webhook_url:
        attempt.error = "no callback URL"
        return attempt
    body = json.dumps(event.payload, ensure_ascii=False, sort_keys=True).encode()
    headers = api_signing.signed_headers(
        key_id=WEBHOOK_KEY_ID, secret=secret, method="POST", url=event.webhook_url, body=body
    )
    headers |= {api_signing.HEADER_EVENT_ID: event.event_id, "Content-Type": "application/json"}
    started = time.monotonic()
    try:
        response = transport(url=event.webhook_url, body=body, headers=headers, timeout=settings.SUPPLIER_HTTP_TIMEOUT)
        attempt.status_code = response.status_code
    except Exception as failure:  # noqa: BLE001 — any failure to deliver is logged and retried
        attempt.error = f"{failure.__class__.__name__}: {failure}"[:200]
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    return attempt


def _record(tries: list[_Try], *, now, finished, manual: bool) -> None:
    """The delivery log and each event's new state: one statement (``attempts`` counts in SQL,
    so a staff resend at the same moment is counted too). Delivered, or the next try with
    backoff, or given up 24 hours after the event; a resent event that was not pending keeps
    its state unless the resend delivered it."""
    statuses, next_at, delivered_at = [], [], []
    for attempt in tries:
        event = attempt.event
        status = when = done_at = None
        if attempt.delivered:
            status, done_at = WebhookStatus.DELIVERED.value, finished
        elif event.status == WebhookStatus.PENDING:
            when = now + timedelta(seconds=retry_delay(event.attempts + 1))
            if when > event.created_at + GIVE_UP_AFTER:
                status, when = WebhookStatus.GAVE_UP.value, None
        statuses.append(status)
        next_at.append(when)
        delivered_at.append(done_at)
    fetch_rows(
        sql.RECORD,
        {
            "ids": [attempt.event.pk for attempt in tries],
            "codes": [attempt.status_code for attempt in tries],
            "errors": [attempt.error for attempt in tries],
            "durations": [attempt.duration_ms for attempt in tries],
            "statuses": statuses,
            "next_at": next_at,
            "delivered_at": delivered_at,
            "manual": manual,
            "logged_at": timezone.now(),  # the log keeps real time, whatever `now` the caller gave
        },
    )
    for attempt in tries:
        if not attempt.delivered:
            logger.info(
                "docking.webhook_failed", extra={"event": attempt.event.event_id, "status": attempt.status_code}
            )


def deliver_webhook_batch(
    *, limit: int = BATCH_SIZE, event_pks=None, manual: bool = False, transport=None, now=None
) -> list[_Try]:
    """Claim, send and record one batch (see the module doc); the tries made (none when nothing
    was due or another worker holds it)."""
    now = now or timezone.now()
    events = _claim(now=now, limit=limit, event_pks=event_pks, manual=manual)
    if not events:
        return []
    secrets = _secrets(events)
    tries = [_Try(event=event) for event in events]
    default_transport, executor = _process_tools()
    send_with = transport or default_transport

    def send(attempt: _Try) -> _Try:
        return _send(attempt, secrets[attempt.event.site_id], send_with)

    if len(tries) == 1:
        send(tries[0])
    else:
        list(executor.map(send, tries))
    finished = timezone.now() if now is None else now
    _record(tries, now=now, finished=finished, manual=manual)
    return tries


def deliver_webhook_event(*, event_pk: int, manual: bool = False, transport=None, now=None) -> WebhookEvent | None:
    """One try of one event; the event as it now stands, or None when it was not due (or
    another worker holds it)."""
    tries = deliver_webhook_batch(limit=1, event_pks=[event_pk], manual=manual, transport=transport, now=now)
    if not tries:
        return None
    return WebhookEvent.objects.get(pk=event_pk)


def deliver_webhook_event_soon(*, event_pk: int, transport=None) -> int:
    """The task after an event's commit: its event, and whatever else is due with it (a burst
    of events is then drained by the first tasks in batches; the later ones find their event
    delivered and stop after one statement). Returns how many were delivered."""
    tries = deliver_webhook_batch(limit=1, event_pks=[event_pk], transport=transport)
    if tries:
        tries += deliver_webhook_batch(limit=BATCH_SIZE - 1, transport=transport)
    return sum(attempt.delivered for attempt in tries)


def due_event_ids(*, now=None, limit: int = 500) -> list[int]:
    return list(
        WebhookEvent.objects.filter(status=WebhookStatus.PENDING, next_attempt_at__lte=now or timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def deliver_due_webhooks(*, now=None, transport=None, limit: int = 500) -> int:
    """Try every due event once (up to ``limit``), in batches; returns how many were delivered."""
    delivered = tried = 0
    while tried < limit:
        tries = deliver_webhook_batch(limit=min(BATCH_SIZE, limit - tried), transport=transport, now=now)
        if not tries:
            break
        tried += len(tries)
        delivered += sum(attempt.delivered for attempt in tries)
    return delivered


def resend_webhook_event(*, event: WebhookEvent, actor, request=None, transport=None) -> WebhookEvent:
    """Staff resend (any status): one more try now, logged as manual and audited."""
    from django.core.exceptions import PermissionDenied

    from kamen.audit import record_audit

    if actor is None or not actor.has_perm("distribution.resend_webhookevent"):
        raise PermissionDenied("resending a webhook needs distribution.resend_webhookevent")
    record_audit(actor=actor, action="docking.webhook_resent", target=event, request=request)
    return deliver_webhook_event(event_pk=event.pk, manual=True, transport=transport) or event
