"""The open API's HTTP face (django-ninja, docs/adr/0019): parse, verify the signature for the
operation's scope, call one service, answer JSON. Every refusal is ``{code, message_zh,
message_en}`` with the status of ``distribution.docking.errors``."""

import logging

from django.http import HttpRequest
from ninja import NinjaAPI, Query, Status, Swagger
from ninja.errors import HttpError, ValidationError
from ninja.security import APIKeyHeader

from distribution.docking.errors import ERRORS, DockingError
from distribution.docking.models import ApiScope
from distribution.docking.services import verify_signed_request
from kamen import api_signing
from kamen.client_ip import client_ip

from . import schemas, services

logger = logging.getLogger(__name__)

ERROR_RESPONSES = {status: schemas.ErrorOut for status in sorted({spec.status for spec in ERRORS.values()})}


class SignedRequest(APIKeyHeader):
    """HMAC-SHA256 request signing (see the description at /api/docs/): the key id travels in
    X-Kamen-Key-Id, the timestamp, nonce and signature in their own headers."""

    param_name = api_signing.HEADER_KEY_ID

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest):
        return verify_signed_request(
            method=request.method,
            path=request.path,
            query=request.META.get("QUERY_STRING", ""),
            headers=request.headers,
            body=request.body,
            client_ip=client_ip(request),
            scope=self.scope,
        )

    def authenticate(self, request, key):  # pragma: no cover - __call__ does the work
        return None


DESCRIPTION = (
    """
Kamen's open API for docking sites (对接商户) and a merchant's own systems.

**Signing.** Every request carries four headers: `X-Kamen-Key-Id`, `X-Kamen-Timestamp` (Unix
seconds, within ±5 minutes of the server), `X-Kamen-Nonce` (16–64 letters, digits, `-`, `_`;
never used twice) and `X-Kamen-Signature` = hex(HMAC-SHA256(secret, canonical)) where
canonical is these six lines joined by `\\n`: the method, the path, the query string with its
pairs sorted and percent-encoded (RFC 3986), the timestamp, the nonce, hex(SHA-256(body)).

**Errors** are `{"code", "message_zh", "message_en"}` (and sometimes `detail`), codes stable:
"""
    + "\n".join(f"- `{code}` ({spec.status}): {spec.message_en}" for code, spec in ERRORS.items())
    + """

**Webhooks** are POSTed to your callback URL, signed the same way with your webhook secret
(`X-Kamen-Key-Id` is `webhook`), with `X-Kamen-Event-Id`; answer 2xx. Undelivered events are
retried with exponential backoff for 24 hours; the same event may arrive twice: drop repeats by
its id. Money amounts are strings of yuan to the fen.
"""
)

api = NinjaAPI(
    title="Kamen open API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_url="/docs/",
    openapi_url="/schema/",
)


def _error(request, error: DockingError):
    if error.code not in ("rate_limited",):
        logger.info("api.refused", extra={"code": error.code, "path": request.path})
    response = api.create_response(request, error.body(), status=error.spec.status)
    if error.code == "rate_limited":
        response["Retry-After"] = "60"
    return response


@api.exception_handler(DockingError)
def docking_error(request, exc: DockingError):
    return _error(request, exc)


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    detail = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ())[1:]) or 'body'}: {error.get('msg', '')}"
        for error in exc.errors
    )
    return _error(request, DockingError("invalid_request", detail[:300]))


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    code = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}.get(
        exc.status_code
    )
    return _error(request, DockingError(code or "invalid_request"))


@api.get(
    "/v1/products",
    response={200: schemas.ProductPage} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.CATALOG_READ),
    summary="Catalog at your price, with live stock",
    tags=["catalog"],
)
def list_products(request, cursor: int = 0, limit: int = Query(50, ge=1, le=100), updated_since: str | None = None):
    since = None
    if updated_since:
        from django.utils.dateparse import parse_datetime

        since = parse_datetime(updated_since)
        if since is None or since.tzinfo is None:
            raise DockingError("invalid_request", "updated_since: an ISO 8601 time with its offset")
    page = services.catalog_page(caller=request.auth, after_id=max(cursor, 0), limit=limit, updated_since=since)
    return {"items": page.items, "next_cursor": page.next_cursor}


@api.post(
    "/v1/orders",
    response={200: schemas.OrderOut, 201: schemas.OrderOut} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.ORDERS_CREATE),
    summary="Place an order, paid from your prepaid balance (idempotent on client_order_no)",
    tags=["orders"],
)
def create_order(request, body: schemas.OrderIn):
    placed = services.place_api_order(
        caller=request.auth,
        product_id=body.product_id,
        quantity=body.quantity,
        client_order_no=body.client_order_no,
        recharge_target=body.recharge_target,
        buyer_fields=body.custom_fields,
    )
    view = services.order_view(
        caller=request.auth, docking_order=placed.docking_order, with_goods=False, audit=not placed.created
    )
    return Status(201 if placed.created else 200, view)


@api.get(
    "/v1/orders/{client_order_no}",
    response={200: schemas.OrderOut} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.ORDERS_READ),
    summary="Your order's status and, once delivered, its goods",
    tags=["orders"],
)
def get_order(request, client_order_no: str):
    docking_order = services.docking_order_for(caller=request.auth, client_order_no=client_order_no)
    return services.order_view(caller=request.auth, docking_order=docking_order, with_goods=True)


@api.post(
    "/v1/orders/{client_order_no}/refund-requests",
    response={201: schemas.RefundOut} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.REFUNDS_CREATE),
    summary="Ask for a refund (staff review it; the money returns to your prepaid balance)",
    tags=["orders"],
)
def create_refund_request(request, client_order_no: str, body: schemas.RefundIn):
    made = services.request_refund(caller=request.auth, client_order_no=client_order_no, reason=body.reason)
    return Status(
        201,
        {
            "id": made.pk,
            "client_order_no": client_order_no,
            "status": made.status,
            "reason": made.reason,
            "created_at": made.created_at,
        },
    )


@api.get(
    "/v1/balance",
    response={200: schemas.BalanceOut} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.ORDERS_READ),
    summary="Your prepaid balance and credit limit",
    tags=["account"],
)
def get_balance(request):
    return services.balance_view(caller=request.auth)


@api.get(
    "/v1/statement",
    response={200: schemas.StatementOut} | ERROR_RESPONSES,
    auth=SignedRequest(ApiScope.ORDERS_READ),
    summary="Your prepaid account's entries, oldest first",
    tags=["account"],
)
def get_statement(request, cursor: int = 0, limit: int = Query(50, ge=1, le=100)):
    return services.statement_view(caller=request.auth, after_id=max(cursor, 0), limit=limit)


_original_schema = api.get_openapi_schema


def _schema_with_webhooks(*args, **kwargs):
    """OpenAPI 3.1's ``webhooks``: what Kamen POSTs to a site's callback URL."""
    schema = _original_schema(*args, **kwargs)
    event = schemas.WebhookEventOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.setdefault("components", {}).setdefault("schemas", {})["WebhookEvent"] = event
    schema["webhooks"] = {
        kind: {
            "post": {
                "summary": f"{kind} (signed like a request, X-Kamen-Event-Id = the event id)",
                "operationId": f"webhook_{kind.replace('.', '_')}",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}}
                },
                "responses": {"200": {"description": "any 2xx: received (redeliveries stop)"}},
            }
        }
        for kind in (
            "order.delivered",
            "order.refunded",
            "product.price_changed",
            "product.stock_changed",
            "product.delisted",
        )
    }
    return schema


api.get_openapi_schema = _schema_with_webhooks


def schema_text() -> str:
    """The OpenAPI document as committed in docs/api/openapi.json (``manage.py
    write_openapi_schema`` writes it; a test fails while the two differ)."""
    import json

    from ninja.responses import NinjaJSONEncoder

    schema = api.get_openapi_schema(path_prefix="/api/")
    return json.dumps(schema, cls=NinjaJSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
