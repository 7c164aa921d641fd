"""Client for Kamen's own sandbox supplier (catalog/sandbox_views.py), the reference adapter.

Wire format: POST JSON to <base_url><operation>/, signed (catalog/suppliers/signing.py).
Answers: ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code": ..., "message": ...}}``.
"""

import json
from decimal import Decimal, InvalidOperation

from .base import (
    OrderResult,
    OrderStatus,
    PriceQuote,
    SupplierClient,
    SupplierError,
    TransportResponse,
    TransportTimeout,
    TransportUnreachable,
    decode_json,
)
from .signing import signed_headers

# Sandbox order states → our outcome. "processing" is not an answer yet.
_ORDER_STATUS = {"success": OrderStatus.SUCCEEDED, "failed": OrderStatus.FAILED, "processing": OrderStatus.PENDING}


def _amount(raw) -> Decimal | None:
    if raw is None:
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise SupplierError(f"supplier sent an amount that is not a number: {raw!r}") from None


class SandboxSupplierClient(SupplierClient):
    def _post(self, operation: str, payload: dict) -> TransportResponse:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = signed_headers(secret=self._app_secret, app_id=self.app_id, body=body)
        return self.transport(url=self.base_url + operation + "/", body=body, headers=headers, timeout=self.timeout)

    def _read(self, operation: str, payload: dict) -> dict:
        """For reads: any problem is a SupplierError; nothing is left unknown."""
        try:
            response = self._post(operation, payload)
        except (TransportTimeout, TransportUnreachable) as error:
            raise SupplierError(f"{operation}: supplier unreachable ({error})") from None
        except (OSError, ValueError) as error:
            raise SupplierError(f"{operation}: request failed ({error.__class__.__name__})") from None
        data = decode_json(response.body)
        if response.status_code != 200 or not data.get("ok"):
            error = data.get("error") or {}
            raise SupplierError(f"{operation}: {error.get('code', response.status_code)} {error.get('message', '')}".strip())
        return data

    def _order_result(self, response: TransportResponse) -> OrderResult:
        if response.status_code >= 500:
            return OrderResult(OrderStatus.PENDING, message=f"supplier answered HTTP {response.status_code}")
        try:
            data = decode_json(response.body)
        except SupplierError as error:
            # A 200 we cannot read may still be a placed order.
            return OrderResult(OrderStatus.PENDING, message=str(error))
        if not data.get("ok"):
            error = data.get("error") or {}
            code, message = error.get("code", ""), error.get("message", "")
            if code == "out_of_stock":
                return OrderResult(OrderStatus.OUT_OF_STOCK, message=message or "out of stock")
            return OrderResult(OrderStatus.FAILED, message=f"{code}: {message}".strip(": "))
        order = data.get("order") or {}
        status = _ORDER_STATUS.get(order.get("status"))
        if status is None:
            return OrderResult(OrderStatus.PENDING, message=f"unknown order status {order.get('status')!r}")
        if order.get("error_code") == "out_of_stock":
            status = OrderStatus.OUT_OF_STOCK
        return OrderResult(
            status,
            supplier_order_no=str(order.get("order_no", "")),
            cost=_amount(order.get("amount")) if status == OrderStatus.SUCCEEDED else None,
            message=str(order.get("message", "")),
        )

    def place_order(self, *, sku: str, target: str, quantity: int, out_order_no: str) -> OrderResult:
        payload = {"sku": sku, "target": target, "quantity": quantity, "out_order_no": out_order_no}
        try:
            response = self._post("orders", payload)
        except TransportUnreachable as error:
            return OrderResult(OrderStatus.FAILED, message=f"supplier unreachable: {error}")
        except TransportTimeout as error:
            return OrderResult(OrderStatus.PENDING, message=f"no answer from supplier: {error}")
        return self._order_result(response)

    def query_order(self, *, out_order_no: str) -> OrderResult:
        try:
            response = self._post("orders/query", {"out_order_no": out_order_no})
        except (TransportTimeout, TransportUnreachable) as error:
            return OrderResult(OrderStatus.PENDING, message=f"query failed: {error}")
        if response.status_code == 404:
            # The supplier never received the order: nothing was charged, nothing topped up.
            return OrderResult(OrderStatus.FAILED, message="supplier has no such order", is_not_found=True)
        return self._order_result(response)

    def fetch_prices(self, *, skus: list[str]) -> dict[str, PriceQuote]:
        data = self._read("prices", {"skus": list(skus)})
        quotes = {}
        for item in data.get("prices") or []:
            price = _amount(item.get("price"))
            if price is None or price < 0:
                raise SupplierError(f"prices: invalid price for {item.get('sku')!r}")
            quotes[str(item["sku"])] = PriceQuote(sku=str(item["sku"]), price=price, is_in_stock=bool(item.get("in_stock")))
        return quotes

    def fetch_balance(self) -> Decimal:
        balance = _amount(self._read("balance", {}).get("balance"))
        if balance is None:
            raise SupplierError("balance: missing from the answer")
        return balance


class InProcessTransport:
    """Calls Kamen's own sandbox views through Django's test client: no socket, same database
    connection. For tests and for callers already inside the server process."""

    def __init__(self):
        from django.test import Client

        self.client = Client()

    def __call__(self, *, url: str, body: bytes, headers: dict[str, str], timeout: float) -> TransportResponse:
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        response = self.client.generic(
            "POST", path, data=body, content_type="application/json", headers={k: v for k, v in headers.items() if k != "Content-Type"}
        )
        return TransportResponse(status_code=response.status_code, body=response.content)
