"""The supplier adapter interface: what Kamen asks of any upstream (货源), whatever its API.

An adapter turns four operations into HTTP calls through an injectable ``Transport`` (so tests
and the embedded demo can stub or short-circuit the network) and answers with the plain
dataclasses below. Adapters never touch the database: services decide what an answer means.

The one rule every adapter keeps: when it cannot tell whether the supplier carried out an order
(timeout, connection dropped after sending, a 5xx, "processing"), the outcome is PENDING, never
FAILED, so the caller queries before it tries another channel and the buyer is never topped up
twice.
"""

import http.client
import json
import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class OrderStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OUT_OF_STOCK = "out_of_stock"
    PENDING = "pending"


@dataclass(frozen=True)
class OrderResult:
    """What the supplier said about one order (or what we can tell when it said nothing)."""

    status: OrderStatus
    supplier_order_no: str = ""
    cost: Decimal | None = None
    message: str = ""
    # A query the supplier answered with "no such order". Final only once a late request can no
    # longer arrive: the caller decides, knowing when the order was sent.
    is_not_found: bool = False
    # Card keys the supplier delivered with the order, as (card number, secret) pairs.
    goods: tuple = ()

    @property
    def is_final(self) -> bool:
        return self.status != OrderStatus.PENDING


@dataclass(frozen=True)
class PriceQuote:
    sku: str
    price: Decimal
    is_in_stock: bool


class SupplierError(Exception):
    """A read (prices, balance) could not be answered: network, auth, or a malformed reply.
    The message is safe to show and to log: it never contains a secret."""


class UnknownAdapter(SupplierError):
    pass


# --- transport ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransportResponse:
    status_code: int
    body: bytes


class TransportTimeout(Exception):
    """The request may have reached the supplier; its answer did not reach us."""


class TransportUnreachable(Exception):
    """The request certainly did not reach the supplier (connection refused, DNS)."""


class Transport(Protocol):
    def __call__(self, *, url: str, body: bytes, headers: dict[str, str], timeout: float) -> TransportResponse: ...


class UrllibTransport:
    """Real HTTP with the standard library: one POST, JSON in and out, a hard timeout."""

    def __call__(self, *, url: str, body: bytes, headers: dict[str, str], timeout: float) -> TransportResponse:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return TransportResponse(status_code=response.status, body=response.read())
        except urllib.error.HTTPError as error:
            return TransportResponse(status_code=error.code, body=error.read() or b"")
        except TimeoutError as error:
            raise TransportTimeout(str(error) or "timed out") from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise TransportTimeout(str(reason) or "timed out") from None
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                raise TransportUnreachable(str(reason)) from None
            # Reset or aborted mid-request: it may have been processed.
            raise TransportTimeout(str(reason)) from None
        except (ConnectionResetError, ConnectionAbortedError, http.client.HTTPException) as error:
            raise TransportTimeout(str(error) or error.__class__.__name__) from None


# --- the interface ------------------------------------------------------------------------------
class SupplierClient(ABC):
    """One supplier account. Construct through ``catalog.suppliers.client_for``."""

    def __init__(self, *, base_url: str, app_id: str, app_secret: str, transport: Transport | None = None, timeout: float = 10.0):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.app_id = app_id
        self._app_secret = app_secret
        self.transport = transport or UrllibTransport()
        self.timeout = timeout

    def __repr__(self):  # never the secret
        return f"<{self.__class__.__name__} {self.base_url} app_id={self.app_id}>"

    @abstractmethod
    def place_order(self, *, sku: str, target: str, quantity: int, out_order_no: str) -> OrderResult:
        """Ask for a top-up. Safe to repeat with the same out_order_no: the supplier keeps one order."""

    @abstractmethod
    def query_order(self, *, out_order_no: str) -> OrderResult:
        """What became of an order we placed (or tried to place)."""

    @abstractmethod
    def fetch_prices(self, *, skus: list[str]) -> dict[str, PriceQuote]:
        """Current price and stock of these SKUs; an SKU the supplier does not know is absent."""

    @abstractmethod
    def fetch_balance(self) -> Decimal:
        """Our prepaid balance with the supplier."""


def decode_json(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SupplierError("supplier answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise SupplierError("supplier answered with JSON that is not an object")
    return data
