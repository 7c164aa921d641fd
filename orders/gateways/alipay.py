"""Alipay (支付宝) open platform adapter: page and WAP pay, async notify, query, refund.

Protocol as documented at opendocs.alipay.com: every request carries the common parameters and a
JSON ``biz_content``, signed with the merchant's application private key (RSA2 = SHA256withRSA,
PKCS#1 v1.5, base64) over the sorted ``k=v&…`` string of the non-empty parameters except
``sign``. Alipay signs its answers with *its* key, which the merchant downloads from the console:
the async notify over the sorted parameters except ``sign`` and ``sign_type``, and an API
response over the exact raw JSON text of the ``…_response`` node (so we cut that text out of the
body rather than re-serialising it, which would change spacing, key order and escapes).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric import rsa

from kamen import rsa_signing
from kamen.rsa_signing import load_private_key, load_public_key, rsa2_sign, sign_content
from orders.gateways.base import (
    GatewayError,
    MalformedNotification,
    NotificationAnswer,
    PaymentGateway,
    PaymentNotification,
    PaymentOutcome,
    PaymentRequest,
    PaymentStart,
    RefundResult,
    SignatureInvalid,
    Transport,
)

# Alipay speaks Beijing time. China has had no daylight saving since 1991, so a fixed offset is
# exact and spares slim images the tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

PRODUCT_CODES = {
    "page": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    "wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
}

TRADE_STATUS_OUTCOMES = {
    "TRADE_SUCCESS": PaymentOutcome.SUCCEEDED,
    "TRADE_FINISHED": PaymentOutcome.SUCCEEDED,  # paid and no longer refundable
    "WAIT_BUYER_PAY": PaymentOutcome.PENDING,
    "TRADE_CLOSED": PaymentOutcome.CLOSED,  # unpaid and timed out, or fully refunded
}

AMOUNT_PATTERN = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?", re.ASCII)

SUCCESS_CODE = "10000"
BUSINESS_FAILED_CODE = "40004"


def rsa2_verify(public_key: rsa.RSAPublicKey, content: bytes, signature: str) -> None:
    """Raise SignatureInvalid unless ``signature`` is a canonical base64 RSA2 signature of ``content``."""
    try:
        rsa_signing.rsa2_verify(public_key, content, signature)
    except rsa_signing.SignatureMismatch as error:
        raise SignatureInvalid(str(error).replace("the provider's", "Alipay's")) from None


def format_amount(amount: Decimal) -> str:
    """Yuan with exactly two decimals, e.g. ``12.34``; anything not whole fen is a caller bug."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"{amount!r} is not an amount in whole fen")
    if amount <= 0:
        raise ValueError("the amount must be greater than zero")
    return f"{amount:.2f}"


def parse_amount(raw: object, *, name: str) -> Decimal:
    """Alipay amounts are plain decimal strings with at most two places; anything else is malformed."""
    if not isinstance(raw, str) or not AMOUNT_PATTERN.fullmatch(raw):
        raise MalformedNotification(f"{name} is not an amount in yuan to the fen")
    return Decimal(raw).quantize(Decimal("0.01"))


def parse_time(raw: object) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw), TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise MalformedNotification("a time is not in the form yyyy-MM-dd HH:mm:ss") from None


def extract_response_node(body: str, node: str) -> tuple[str | None, str | None]:
    """Return (raw JSON text of ``node``, ``sign``) from a top-level JSON object, exactly as sent."""
    if not body.strip().startswith("{"):
        raise GatewayError("Alipay answered something that is not a JSON object")
    try:
        return rsa_signing.extract_response_node(body, node)
    except ValueError:
        raise GatewayError("Alipay answered malformed JSON") from None


class AlipayGateway(PaymentGateway):
    code = "alipay"

    def __init__(
        self,
        app_id: str,
        app_private_key_pem: str,
        alipay_public_key_pem: str,
        gateway_url: str = "https://openapi.alipay.com/gateway.do",
        seller_id: str = "",
        transport: Transport | None = None,
    ):
        super().__init__(transport=transport)
        if not app_id:
            raise ValueError("the Alipay app id is required")
        self.app_id = app_id
        self.private_key = load_private_key(app_private_key_pem)
        self.alipay_public_key = load_public_key(alipay_public_key_pem)
        self.gateway_url = gateway_url
        self.seller_id = seller_id

    def __repr__(self) -> str:  # never show keys
        return f"<AlipayGateway app_id={self.app_id}>"

    # --- requests ---------------------------------------------------------------------------

    def signed_params(self, method: str, biz_content: Mapping, **extra: str) -> dict[str, str]:
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime(TIME_FORMAT),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
            **extra,
        }
        params = {key: value for key, value in params.items() if value != ""}
        params["sign"] = rsa2_sign(self.private_key, sign_content(params))
        return params

    def start_payment(self, request: PaymentRequest) -> PaymentStart:
        """The signed GET URL of Alipay's cashier; the view redirects the buyer there."""
        if request.scene not in PRODUCT_CODES:
            raise ValueError(f"Alipay has no scene {request.scene!r} (page or wap)")
        method, product_code = PRODUCT_CODES[request.scene]
        biz_content = {
            "out_trade_no": request.out_trade_no,
            "total_amount": format_amount(request.amount),
            "subject": request.subject[:256],
            "product_code": product_code,
        }
        if request.expires_at is not None:
            biz_content["time_expire"] = request.expires_at.astimezone(BEIJING).strftime(TIME_FORMAT)
        if request.scene == "wap" and request.return_url:
            biz_content["quit_url"] = request.return_url
        params = self.signed_params(method, biz_content, notify_url=request.notify_url, return_url=request.return_url)
        return PaymentStart(redirect_url=f"{self.gateway_url}?{urllib.parse.urlencode(params)}")

    def call(self, method: str, biz_content: Mapping) -> dict:
        """POST an API call and return its verified ``…_response`` node as a dict.

        Raises SignatureInvalid for an unsigned success or a bad signature, GatewayError when
        Alipay is unreachable or answers something unusable. Business errors are returned for
        the caller to interpret (``code`` other than 10000).
        """
        params = self.signed_params(method, biz_content)
        response = self.transport(
            "POST",
            f"{self.gateway_url}?charset=utf-8",
            {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "Accept": "application/json"},
            urllib.parse.urlencode(params).encode(),
        )
        if response.status != 200:
            raise GatewayError(f"Alipay answered HTTP {response.status} to {method}")
        try:
            text = response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise GatewayError("Alipay answered text that is not UTF-8") from None
        node_name = method.replace(".", "_") + "_response"
        raw_node, signature = extract_response_node(text, node_name)
        if raw_node is None:
            raw_node, signature = extract_response_node(text, "error_response")
            if raw_node is None:
                raise GatewayError(f"Alipay's answer to {method} has no {node_name}")
        node = json.loads(raw_node)
        if not isinstance(node, dict):
            raise GatewayError(f"Alipay's {node_name} is not an object")
        if signature is None:
            # Alipay leaves only some gateway-level errors (bad app id, bad request signature)
            # unsigned; nothing we act on may be unsigned.
            if node.get("code") in (SUCCESS_CODE, BUSINESS_FAILED_CODE):
                raise SignatureInvalid(f"Alipay's answer to {method} is not signed")
            raise GatewayError(f"Alipay refused {method}: {describe_error(node)}")
        rsa2_verify(self.alipay_public_key, raw_node.encode("utf-8"), signature)
        return node

    def download_statement(self, *, day) -> tuple[str, bytes]:
        return download_statement_of(self, day=day)

    # --- notifications ----------------------------------------------------------------------

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentNotification:
        params = decode_form(body)
        signature = params.get("sign", "")
        if not signature:
            raise SignatureInvalid("the notification carries no sign")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise SignatureInvalid("only RSA2 signatures are accepted")
        content = sign_content(params, exclude=("sign", "sign_type"), skip_empty=False)
        rsa2_verify(self.alipay_public_key, content.encode("utf-8"), signature)
        if self.seller_id and params.get("seller_id") != self.seller_id:
            raise MalformedNotification("the notification is for another seller")
        for name in ("notify_id", "out_trade_no", "trade_no", "trade_status", "app_id"):
            if not params.get(name):
                raise MalformedNotification(f"the notification has no {name}")
        return PaymentNotification(
            gateway=self.code,
            event_id=params["notify_id"],
            out_trade_no=params["out_trade_no"],
            gateway_trade_no=params["trade_no"],
            app_id=params["app_id"],
            amount=parse_amount(params.get("total_amount"), name="total_amount"),
            currency="CNY",
            outcome=map_trade_status(params["trade_status"]),
            paid_at=parse_time(params.get("gmt_payment")),
            raw={key: value for key, value in params.items() if key != "sign"},
        )

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        """Alipay stops retrying only on the exact body ``success``; anything else is retried."""
        return NotificationAnswer(status=200, body="success" if accepted else "fail")

    # --- active query and refund ------------------------------------------------------------

    def query_payment(self, *, out_trade_no: str) -> PaymentNotification | None:
        node = self.call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if node.get("code") == BUSINESS_FAILED_CODE and node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None  # the buyer never opened the cashier, or the number is not ours
        if node.get("code") != SUCCESS_CODE:
            raise GatewayError(f"alipay.trade.query failed: {describe_error(node)}")
        if node.get("out_trade_no") != out_trade_no:
            raise GatewayError("Alipay answered about another order")
        trade_no, trade_status = node.get("trade_no"), node.get("trade_status")
        if not trade_no or not trade_status:
            raise MalformedNotification("the query answer has no trade_no or trade_status")
        return PaymentNotification(
            gateway=self.code,
            event_id=f"query:{trade_no}:{trade_status}",
            out_trade_no=out_trade_no,
            gateway_trade_no=trade_no,
            app_id=self.app_id,
            amount=parse_amount(node.get("total_amount"), name="total_amount"),
            currency="CNY",
            outcome=map_trade_status(trade_status),
            paid_at=parse_time(node.get("send_pay_date")),
            raw=node,
        )

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal, reason: str
    ) -> RefundResult:
        """Refund once per ``out_refund_no``; Alipay treats a repeat as the same refund.

        A repeat answers ``fund_change=N`` (no money moved *this* call), so N is confirmed with
        a refund query before it is reported as not yet succeeded.
        """
        biz_content = {
            "out_trade_no": out_trade_no,
            "refund_amount": format_amount(refund_amount),
            "out_request_no": out_refund_no,
            "refund_reason": reason[:256],
        }
        node = self.call("alipay.trade.refund", biz_content)
        if node.get("code") != SUCCESS_CODE:
            raise GatewayError(f"alipay.trade.refund failed: {describe_error(node)}")
        is_succeeded = node.get("fund_change") == "Y"
        if not is_succeeded:
            query = self.call(
                "alipay.trade.fastpay.refund.query", {"out_trade_no": out_trade_no, "out_request_no": out_refund_no}
            )
            is_succeeded = query.get("code") == SUCCESS_CODE and query.get("refund_status") == "REFUND_SUCCESS"
        return RefundResult(
            out_refund_no=out_refund_no,
            gateway_refund_no=str(node.get("trade_no", "")),
            amount=refund_amount,
            is_succeeded=is_succeeded,
            raw=node,
        )


def download_statement_of(gateway: AlipayGateway, *, day) -> tuple[str, bytes]:
    """The day's trade bill: its download address (``alipay.data.dataservice.bill.downloadurl
    .query``, signed and verified like every call), then the zip it names."""
    node = gateway.call(
        "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": day.isoformat()}
    )
    url = node.get("bill_download_url")
    if node.get("code") != SUCCESS_CODE or not url:
        raise GatewayError(f"Alipay gave no statement for {day}: {describe_error(node)}")
    response = gateway.transport("GET", url, {}, None)
    if response.status != 200:
        raise GatewayError(f"Alipay's statement download answered HTTP {response.status}")
    return "alipay", response.body


def decode_form(body: bytes) -> dict[str, str]:
    """Decode the notify's form body in the charset it declares (utf-8 unless it says gbk)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedNotification("the notification body is not URL-encoded") from None
    charset = "utf-8"
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        if key == "charset" and value.lower() in ("gbk", "gb2312", "gb18030"):
            charset = "gb18030"
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise MalformedNotification(f"the notification is not valid {charset}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise MalformedNotification(f"the notification repeats {key}")
        params[key] = value
    return params


def map_trade_status(trade_status: str) -> PaymentOutcome:
    try:
        return TRADE_STATUS_OUTCOMES[trade_status]
    except KeyError:
        raise MalformedNotification(f"unknown trade_status {trade_status!r}") from None


def describe_error(node: Mapping) -> str:
    """Alipay's own error words (codes and messages, never secrets), for logs and staff."""
    parts = [str(node.get(name)) for name in ("code", "msg", "sub_code", "sub_msg") if node.get(name)]
    return " ".join(parts) or "no error code"
