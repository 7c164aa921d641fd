"""The downstream's webhook receiver: an upstream Kamen tells us its product changed
(issue 17 §2, docs/adr/0019).

One URL per upstream supplier. The request is checked like a signed API request, with the
webhook secret the upstream's staff gave our merchant: headers present, timestamp within ±5
minutes, nonce well formed, HMAC (constant-time), then the nonce spent in the API's own
single-use store (so a replay is refused on every host). The event is then applied once per
event id (``catalog.services.upstream_sync``); a repeat gets the same 200, so the upstream
stops retrying. Refusals are the API's error bodies; nothing is changed by a refused request.
"""

import json
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalog.selectors import upstream_for_webhooks
from catalog.services.upstream_sync import UpstreamEventError, receive_upstream_event, upstream_webhook_secret
from kamen import api_signing, crypto

from .errors import DockingError
from .services import spend_nonce

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _refuse(code: str, detail: str = "") -> JsonResponse:
    error = DockingError(code, detail)
    return JsonResponse(error.body(), status=error.spec.status)


def _verified_body(request, supplier) -> bytes:
    headers = request.headers
    timestamp = (headers.get(api_signing.HEADER_TIMESTAMP) or "").strip()
    nonce = (headers.get(api_signing.HEADER_NONCE) or "").strip()
    signature = (headers.get(api_signing.HEADER_SIGNATURE) or "").strip()
    if not (timestamp and nonce and signature):
        raise DockingError("auth_missing")
    if not api_signing.timestamp_is_fresh(timestamp):
        raise DockingError("auth_timestamp_invalid")
    if not api_signing.nonce_is_well_formed(nonce):
        raise DockingError("auth_nonce_invalid")
    body = request.body
    expected = api_signing.compute_signature(
        secret=upstream_webhook_secret(supplier),
        method="POST",
        path=request.path,
        query=request.META.get("QUERY_STRING", ""),
        timestamp=timestamp,
        nonce=nonce,
        body=body,
    )
    if not api_signing.signatures_match(expected, signature):
        raise DockingError("auth_bad_signature")
    if not spend_nonce(key_id=f"upstream-webhook:{supplier.pk}", nonce=nonce):
        raise DockingError("auth_nonce_reused")
    return body


@csrf_exempt
@require_POST
def upstream_webhook(request, supplier_pk: int):
    supplier = upstream_for_webhooks(supplier_pk=supplier_pk)
    if supplier is None:
        return _refuse("not_found")
    if len(request.body) > MAX_BODY_BYTES:
        return _refuse("invalid_request", "body too large")
    try:
        body = _verified_body(request, supplier)
    except DockingError as error:
        logger.info("upstream.webhook_refused supplier=%s code=%s", supplier.pk, error.code)
        return _refuse(error.code)
    except crypto.DecryptionError:
        logger.error("upstream.webhook_secret_unreadable supplier=%s", supplier.pk)
        return _refuse("internal_error")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _refuse("malformed_json")
    header_event = (request.headers.get(api_signing.HEADER_EVENT_ID) or "").strip()
    if header_event and isinstance(payload, dict) and header_event != payload.get("id"):
        return _refuse("invalid_request", "X-Kamen-Event-Id differs from the body's id")
    try:
        received = receive_upstream_event(supplier=supplier, body=payload)
    except UpstreamEventError as error:
        logger.info("upstream.webhook_unusable supplier=%s reason=%s", supplier.pk, error)
        return _refuse("invalid_request", str(error))
    return JsonResponse({"ok": True, "id": received.event_id, "duplicate": received.is_duplicate})
