"""Adapter for an upstream that speaks Kamen's open API (another Kamen, or anything that
implements docs/api/openapi.json): Kamen as the downstream (issue 17 §2, docs/adr/0019).

The supplier's ``app_id`` is the API key id, ``app_secret`` its secret, ``base_url`` the
upstream's address; an SKU is the upstream's product id. An order is placed under Kamen's own
order number as ``client_order_no``, so placing it again (a retry after a lost answer) is the
same order upstream; an unknown outcome is PENDING and resolved by ``query_order``.
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from kamen import api_signing

from .base import (
    OrderResult,
    OrderStatus,
    PriceQuote,
    SupplierClient,
    SupplierError,
    TransportResponse,
    TransportTimeout,
    TransportUnreachable,
    UrllibTransport,
    decode_json,
)

# Upstream order states → our outcome; anything else is not an answer yet.
_FINAL = {
    "completed": OrderStatus.SUCCEEDED,
    "failed": OrderStatus.FAILED,
    "refunded": OrderStatus.FAILED,
    "expired": OrderStatus.FAILED,
}
# Refusals that mean "not placed, and retrying the same request will not help".
_REFUSED = {"out_of_stock": OrderStatus.OUT_OF_STOCK}
PAGE_SIZE = 100


def _amount(raw) -> Decimal | None:
    if raw is None:
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise SupplierError(f"upstream sent an amount that is not a number: {raw!r}") from None


@dataclass(frozen=True)
class UpstreamProduct:
    """One product of the upstream's catalog, at the price the upstream charges us."""

    sku: str
    name: str
    product_type: str
    price: Decimal
    stock: int | None  # None: not counted upstream (top-ups)
    in_stock: bool
    requires_recharge_target: bool


class MethodTransport:
    """HTTP with any method (the open API reads with GET): the standard library, a hard timeout."""

    def __call__(
        self, *, method: str, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> TransportResponse:
        if method == "POST":
            return UrllibTransport()(url=url, body=body, headers=headers, timeout=timeout)
        request = urllib.request.Request(url, headers=headers, method=method)  # noqa: S310 (the merchant's upstream URL)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return TransportResponse(status_code=response.status, body=response.read())
        except urllib.error.HTTPError as error:
            return TransportResponse(status_code=error.code, body=error.read() or b"")
        except TimeoutError as error:
            raise TransportTimeout(str(error) or "timed out") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                raise TransportUnreachable(str(error.reason)) from None
            raise TransportTimeout(str(error.reason)) from None


class KamenApiSupplierClient(SupplierClient):
    def __init__(self, **kwargs):
        transport = kwargs.pop("transport", None)
        super().__init__(**kwargs, transport=transport or MethodTransport())

    def _send(self, method: str, path_and_query: str, payload: dict | None = None) -> TransportResponse:
        url = self.base_url + path_and_query.lstrip("/")
        body = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
        headers = api_signing.signed_headers(
            key_id=self.app_id, secret=self._app_secret, method=method, url=url, body=body
        )
        headers["Content-Type"] = "application/json"
        return self.transport(method=method, url=url, body=body, headers=headers, timeout=self.timeout)

    def _read(self, path_and_query: str) -> dict:
        try:
            response = self._send("GET", path_and_query)
        except (TransportTimeout, TransportUnreachable) as error:
            raise SupplierError(f"{path_and_query}: upstream unreachable ({error})") from None
        data = decode_json(response.body)
        if response.status_code != 200:
            raise SupplierError(f"{path_and_query}: {data.get('code', response.status_code)}")
        return data

    @staticmethod
    def _order_result(response: TransportResponse) -> OrderResult:
        if response.status_code >= 500:
            return OrderResult(OrderStatus.PENDING, message=f"upstream answered HTTP {response.status_code}")
        try:
            data = decode_json(response.body)
        except SupplierError as error:
            return OrderResult(OrderStatus.PENDING, message=str(error))
        if response.status_code not in (200, 201):
            code = str(data.get("code", response.status_code))
            if code == "rate_limited":
                return OrderResult(OrderStatus.PENDING, message=code)
            return OrderResult(_REFUSED.get(code, OrderStatus.FAILED), message=f"{code}: {data.get('message_en', '')}")
        status = _FINAL.get(data.get("status"), OrderStatus.PENDING)
        goods = tuple(
            (str(item.get("card_no") or ""), str(item.get("secret") or ""))
            for item in data.get("goods") or []
            if isinstance(item, dict) and item.get("kind") == "card_key" and item.get("secret")
        )
        return OrderResult(
            status,
            supplier_order_no=str(data.get("order_no", "")),
            cost=_amount(data.get("total_amount")) if status == OrderStatus.SUCCEEDED else None,
            message=str(data.get("status", "")),
            goods=goods if status == OrderStatus.SUCCEEDED else (),
        )

    def place_order(self, *, sku: str, target: str, quantity: int, out_order_no: str) -> OrderResult:
        try:
            product_id = int(sku)
        except ValueError:
            return OrderResult(OrderStatus.FAILED, message=f"not an upstream product id: {sku!r}")
        payload = {
            "product_id": product_id,
            "quantity": quantity,
            "client_order_no": out_order_no,
            "recharge_target": target,
        }
        try:
            response = self._send("POST", "api/v1/orders", payload)
        except TransportUnreachable as error:
            return OrderResult(OrderStatus.FAILED, message=f"upstream unreachable: {error}")
        except TransportTimeout as error:
            return OrderResult(OrderStatus.PENDING, message=f"no answer from upstream: {error}")
        return self._order_result(response)

    def query_order(self, *, out_order_no: str) -> OrderResult:
        try:
            response = self._send("GET", f"api/v1/orders/{quote(out_order_no, safe='')}")
        except (TransportTimeout, TransportUnreachable) as error:
            return OrderResult(OrderStatus.PENDING, message=f"query failed: {error}")
        if response.status_code == 404:
            return OrderResult(OrderStatus.FAILED, message="upstream has no such order", is_not_found=True)
        return self._order_result(response)

    def fetch_prices(self, *, skus: list[str]) -> dict[str, PriceQuote]:
        wanted = {str(sku) for sku in skus}
        quotes: dict[str, PriceQuote] = {}
        cursor = 0
        while True:
            page = self._read(f"api/v1/products?cursor={cursor}&limit={PAGE_SIZE}")
            for item in page.get("items") or []:
                sku = str(item.get("id"))
                if sku in wanted:
                    price = _amount(item.get("price"))
                    if price is None or price < 0:
                        raise SupplierError(f"products: invalid price for {sku!r}")
                    quotes[sku] = PriceQuote(sku=sku, price=price, is_in_stock=bool(item.get("in_stock")))
            cursor = page.get("next_cursor")
            if not cursor or len(quotes) == len(wanted):
                return quotes

    def list_products(self) -> list[UpstreamProduct]:
        """The upstream's whole catalog at our price, page by page (for the import form)."""
        products: list[UpstreamProduct] = []
        cursor = 0
        while True:
            page = self._read(f"api/v1/products?cursor={cursor}&limit={PAGE_SIZE}")
            for item in page.get("items") or []:
                price = _amount(item.get("price"))
                if price is None or price < 0:
                    raise SupplierError(f"products: invalid price for {item.get('id')!r}")
                stock = item.get("stock")
                products.append(
                    UpstreamProduct(
                        sku=str(item.get("id")),
                        name=str(item.get("name") or "")[:100],
                        product_type=str(item.get("product_type") or ""),
                        price=price,
                        stock=int(stock) if stock is not None else None,
                        in_stock=bool(item.get("in_stock")),
                        requires_recharge_target=bool(item.get("requires_recharge_target")),
                    )
                )
            cursor = page.get("next_cursor")
            if not cursor:
                return products

    def fetch_balance(self) -> Decimal:
        available = _amount(self._read("api/v1/balance").get("available"))
        if available is None:
            raise SupplierError("balance: missing from the answer")
        return available
