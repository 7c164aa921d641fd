"""The sandbox supplier's HTTP JSON API (see catalog/suppliers/sandbox.py for the client).

Every request is a signed POST: the signature proves the caller holds the account's secret, the
timestamp bounds how long a captured request stays useful, and the nonce (remembered in the
cache for longer than that window) makes each request usable once.
"""

import json
import logging
import time

from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kamen.crypto import DecryptionError
from kamen.parsing import parse_integer

from .models import SandboxAccount, SandboxOrder, SandboxSku
from .sandbox_services import (
    SandboxError,
    account_secret,
    place_sandbox_order,
    query_sandbox_order,
)
from .suppliers import signing

logger = logging.getLogger(__name__)
NONCE_TTL_SECONDS = 2 * signing.MAX_CLOCK_SKEW_SECONDS + 60


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"ok": False, "error": {"code": code, "message": message}}, status=status, json_dumps_params={"ensure_ascii": False})


def _authenticate(request) -> SandboxAccount:
    app_id = request.headers.get(signing.HEADER_APP_ID, "")
    timestamp = request.headers.get(signing.HEADER_TIMESTAMP, "")
    nonce = request.headers.get(signing.HEADER_NONCE, "")
    signature = request.headers.get(signing.HEADER_SIGNATURE, "")
    if not (app_id and timestamp and nonce and signature):
        raise SandboxError("missing_signature", "signed requests need the X-Kamen-App-Id, -Timestamp, -Nonce and -Signature headers", 401)
    if len(nonce) > 64:
        raise SandboxError("bad_nonce", "the nonce is at most 64 characters", 401)
    try:
        sent_at = parse_integer(timestamp)
    except ValueError:
        raise SandboxError("bad_timestamp", "the timestamp is whole seconds since the epoch", 401) from None
    if abs(time.time() - sent_at) > signing.MAX_CLOCK_SKEW_SECONDS:
        raise SandboxError("stale_timestamp", "the timestamp is more than 5 minutes away from the server's clock", 401)
    account = SandboxAccount.objects.filter(app_id=app_id).first()
    if account is None:
        raise SandboxError("unknown_app_id", "no account with this app id", 401)
    try:
        secret = account_secret(account)
    except DecryptionError:
        logger.error("sandbox.secret_undecryptable app_id=%s", app_id)
        raise SandboxError("server_error", "the account's secret cannot be read", 500) from None
    expected = signing.compute_signature(secret=secret, app_id=app_id, timestamp=timestamp, nonce=nonce, body=request.body)
    if not signing.signatures_match(expected, signature):
        raise SandboxError("bad_signature", "the signature does not match the request", 401)
    # Only after the signature: a forger must not be able to burn other callers' nonces.
    if not cache.add(f"sandbox-supplier:nonce:{app_id}:{nonce}", 1, timeout=NONCE_TTL_SECONDS):
        raise SandboxError("replayed_nonce", "this nonce was already used", 401)
    if not account.is_active:
        raise SandboxError("account_disabled", "this account is disabled", 403)
    return account


def _payload(request) -> dict:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SandboxError("bad_request", "the body must be a JSON object", 400) from None
    if not isinstance(data, dict):
        raise SandboxError("bad_request", "the body must be a JSON object", 400)
    return data


def _order_json(order: SandboxOrder) -> dict:
    return {
        "order_no": order.order_no,
        "out_order_no": order.out_order_no,
        "sku": order.sku,
        "target": order.target,
        "quantity": order.quantity,
        "amount": str(order.amount),
        "status": order.status,
        "message": order.message,
        "created_at": order.created_at.isoformat(),
    }


def sandbox_endpoint(handler):
    """Authenticate, simulate latency, parse, run, and turn SandboxError into a JSON answer."""

    @csrf_exempt
    @require_POST
    def view(request):
        try:
            account = _authenticate(request)
            if account.latency_ms:
                time.sleep(account.latency_ms / 1000)
            return JsonResponse({"ok": True} | handler(account, _payload(request)), json_dumps_params={"ensure_ascii": False})
        except SandboxError as error:
            return _error(error.code, error.message, error.status)

    view.__name__ = handler.__name__
    return view


@sandbox_endpoint
def place_order(account, data):
    placed = place_sandbox_order(
        account=account,
        sku=str(data.get("sku", "")),
        target=str(data.get("target", "")),
        quantity=data.get("quantity"),
        out_order_no=str(data.get("out_order_no", "")),
    )
    return {"order": _order_json(placed.order), "duplicate": not placed.created}


@sandbox_endpoint
def query_order(account, data):
    return {"order": _order_json(query_sandbox_order(account=account, out_order_no=str(data.get("out_order_no", ""))))}


@sandbox_endpoint
def prices(account, data):
    skus = data.get("skus")
    if not isinstance(skus, list) or len(skus) > 500:
        raise SandboxError("bad_request", "skus must be a list of at most 500 sku codes")
    items = SandboxSku.objects.filter(sku__in=[str(code) for code in skus])
    return {"prices": [{"sku": item.sku, "price": str(item.price), "in_stock": item.is_in_stock} for item in items]}


@sandbox_endpoint
def balance(account, data):
    return {"balance": str(SandboxAccount.objects.get(pk=account.pk).balance)}
