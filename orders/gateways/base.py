"""The payment gateway adapter interface.

Every gateway (Alipay, WeChat Pay v3, Kamen's own sandbox) is one class with these methods.
Adapters are pure protocol code: they build requests, verify and parse notifications, and talk
HTTP through an injectable transport. They never touch orders; ``orders.services`` does, with
what they return. Amounts cross this boundary as ``Decimal`` yuan to the fen.
"""

from __future__ import annotations

import abc
import enum
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class GatewayError(Exception):
    """The gateway could not be reached or answered something unusable."""


class SignatureInvalid(GatewayError):
    """A notification or response whose signature does not verify: forged or tampered."""


class MalformedNotification(GatewayError):
    """A notification missing fields or with values of the wrong form."""


class PaymentOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"  # money received
    PENDING = "pending"  # created, not paid yet
    FAILED = "failed"  # the buyer's payment failed
    CLOSED = "closed"  # closed / cancelled / timed out at the gateway
    REFUNDED = "refunded"  # fully refunded at the gateway


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str  # our order number
    amount: Decimal
    subject: str
    notify_url: str
    return_url: str = ""
    client_ip: str = ""
    scene: str = "page"  # alipay: page | wap; wechat: native | h5; sandbox: page
    expires_at: datetime | None = None


@dataclass(frozen=True)
class PaymentStart:
    """What the buyer is sent to: a URL to redirect to, or a QR payload to show (WeChat Native)."""

    redirect_url: str = ""
    qr_text: str = ""
    gateway_trade_no: str = ""


@dataclass(frozen=True)
class PaymentNotification:
    """A verified notification or query answer, in Kamen's terms."""

    gateway: str
    event_id: str  # the provider's unique id of this notification (idempotency key)
    out_trade_no: str
    gateway_trade_no: str
    app_id: str
    amount: Decimal  # what the buyer actually paid, in yuan
    currency: str  # "CNY"
    outcome: PaymentOutcome
    paid_at: datetime | None = None
    raw: Mapping = field(default_factory=dict)  # the decoded payload, stored as-is (no secrets)


@dataclass(frozen=True)
class RefundResult:
    out_refund_no: str
    gateway_refund_no: str
    amount: Decimal
    is_succeeded: bool  # accepted/succeeded at the gateway (False: pending; poll or wait for notify)
    raw: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationAnswer:
    """What the callback view answers the gateway (Alipay wants ``success``, WeChat JSON)."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


Transport = Callable[[str, str, Mapping[str, str], bytes | None], HttpResponse]


def urllib_transport(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> HttpResponse:
    """The default transport: urllib, 10 s timeout. Tests pass their own."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - gateway URLs are configured
            return HttpResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise GatewayError(f"gateway unreachable: {error.__class__.__name__}") from None


class PaymentGateway(abc.ABC):
    code: str = ""

    def __init__(self, *, transport: Transport | None = None):
        self.transport = transport or urllib_transport

    @abc.abstractmethod
    def start_payment(self, request: PaymentRequest) -> PaymentStart: ...

    @abc.abstractmethod
    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentNotification:
        """Verify the signature (raise SignatureInvalid) and return the notification.

        ``headers`` keys are lower-case. Checking the app id, amount and currency against the
        order is the caller's job; the adapter checks only what the protocol itself defines.
        """

    @abc.abstractmethod
    def answer_notification(self, *, accepted: bool) -> NotificationAnswer: ...

    @abc.abstractmethod
    def query_payment(self, *, out_trade_no: str) -> PaymentNotification | None:
        """Ask the gateway for the payment's status (active query). None: unknown there."""

    @abc.abstractmethod
    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal, reason: str
    ) -> RefundResult: ...
