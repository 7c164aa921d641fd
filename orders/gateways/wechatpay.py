"""WeChat Pay API v3 (微信支付) adapter: Native and H5 pay, notifications, query, refund.

Protocol as documented at pay.weixin.qq.com/docs/merchant: every request carries an
``Authorization: WECHATPAY2-SHA256-RSA2048`` header signed with the merchant's API certificate
key over ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``. WeChat signs every answer and
notification with its platform key (chosen by the ``wechatpay-serial`` header) over
``TIMESTAMP\\nNONCE\\nBODY\\n``; a notification's payload is additionally encrypted with
AEAD_AES_256_GCM under the merchant's API v3 key. Amounts are integers in fen.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kamen.parsing import is_ascii_digits
from kamen.rsa_signing import load_platform_key, load_private_key
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

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
# WeChat's own SDKs refuse answers and notifications signed more than five minutes away from
# now: a captured message cannot be replayed later.
MAX_CLOCK_SKEW_SECONDS = 300
DESCRIPTION_MAX_BYTES = 127
MAX_FEN = 10**14 - 1  # what DecimalField(max_digits=14, decimal_places=2) holds

TRADE_STATE_OUTCOMES = {
    "SUCCESS": PaymentOutcome.SUCCEEDED,
    "NOTPAY": PaymentOutcome.PENDING,
    "USERPAYING": PaymentOutcome.PENDING,
    "CLOSED": PaymentOutcome.CLOSED,
    "REVOKED": PaymentOutcome.CLOSED,
    "PAYERROR": PaymentOutcome.FAILED,
    "REFUND": PaymentOutcome.REFUNDED,
}


def yuan_to_fen(amount: Decimal) -> int:
    """Decimal yuan → integer fen; an amount not in whole fen is a caller bug, never rounded."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"{amount!r} is not an amount in whole fen")
    if amount <= 0:
        raise ValueError("the amount must be greater than zero")
    return int(amount * 100)


def fen_to_yuan(fen: object, *, name: str = "amount") -> Decimal:
    """Integer fen from WeChat → Decimal yuan to the fen; anything but a non-negative int is malformed."""
    if type(fen) is not int or not 0 <= fen <= MAX_FEN:
        raise MalformedNotification(f"{name} is not a whole number of fen")
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")


class WechatPayGateway(PaymentGateway):
    code = "wechatpay"

    def __init__(
        self,
        app_id: str,
        mch_id: str,
        api_v3_key: str,
        merchant_private_key_pem: str,
        merchant_serial_no: str,
        platform_certificates: Mapping[str, str],
        api_base: str = "https://api.mch.weixin.qq.com",
        transport: Transport | None = None,
    ):
        super().__init__(transport=transport)
        if not app_id or not mch_id or not merchant_serial_no:
            raise ValueError("the app id, merchant id and merchant serial number are required")
        key_bytes = api_v3_key.encode("utf-8") if isinstance(api_v3_key, str) else bytes(api_v3_key)
        if len(key_bytes) != 32:
            raise ValueError("the API v3 key must be 32 bytes")
        if not platform_certificates:
            raise ValueError("at least one platform certificate or WeChat Pay public key is required")
        self.app_id = app_id
        self.mch_id = mch_id
        self.aead = AESGCM(key_bytes)
        self.private_key = load_private_key(merchant_private_key_pem)
        self.merchant_serial_no = merchant_serial_no
        self.platform_keys = {serial: load_platform_key(pem) for serial, pem in platform_certificates.items()}
        self.api_base = api_base.rstrip("/")

    def __repr__(self) -> str:  # never show keys
        return f"<WechatPayGateway mch_id={self.mch_id}>"

    # --- signatures -------------------------------------------------------------------------

    def authorization(self, method: str, url_path: str, body: str) -> str:
        """The Authorization header for one request (path includes the query string)."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{method}\n{url_path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        signature = base64.b64encode(self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        return (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mch_id}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.merchant_serial_no}"'
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureInvalid unless WeChat signed ``body`` recently with a known platform key."""
        headers = {key.lower(): value for key, value in headers.items()}
        timestamp = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        signature = headers.get("wechatpay-signature", "")
        serial = headers.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature and serial):
            raise SignatureInvalid("the WeChat Pay signature headers are missing")
        if serial.startswith("WECHATPAY/SIGNTEST/"):
            # WeChat's deliberate probe: merchants must reject it.
            raise SignatureInvalid("WeChat Pay signature probe")
        public_key = self.platform_keys.get(serial)
        if public_key is None:
            raise SignatureInvalid("signed with an unknown platform certificate serial")
        if not is_ascii_digits(timestamp) or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            raise SignatureInvalid("the signature timestamp is stale or in the future (replay?)")
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("the signature is not base64") from None
        if base64.b64encode(raw_signature).decode() != signature:
            raise SignatureInvalid("the signature is not canonical base64")
        message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
        try:
            public_key.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureInvalid("the signature does not verify with the platform key") from None

    # --- HTTP -------------------------------------------------------------------------------

    def call(self, method: str, path: str, payload: Mapping | None = None) -> tuple[int, dict]:
        """Send a signed request; return (status, verified JSON body). 5xx/unreachable → GatewayError."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if payload is not None else ""
        url = f"{self.api_base}{path}"
        split = urllib.parse.urlsplit(url)
        signed_path = split.path + (f"?{split.query}" if split.query else "")
        headers = {
            "Authorization": self.authorization(method, signed_path, body),
            "Accept": "application/json",
            "User-Agent": "Kamen/1.0",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        response = self.transport(method, url, headers, body.encode("utf-8") if payload is not None else None)
        if response.status >= 500:
            raise GatewayError(f"WeChat Pay answered HTTP {response.status}")
        response_headers = {key.lower(): value for key, value in response.headers.items()}
        if response.status >= 400 and "wechatpay-signature" not in response_headers:
            # Requests WeChat cannot authenticate (401) come back unsigned; nothing to act on.
            raise GatewayError(f"WeChat Pay refused the request: HTTP {response.status} {error_words(response.body)}")
        self.verify(response_headers, response.body)
        if response.status == 204 or not response.body:
            return response.status, {}
        try:
            data = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise GatewayError("WeChat Pay answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise GatewayError("WeChat Pay answered something that is not a JSON object")
        return response.status, data

    def start_payment(self, request: PaymentRequest) -> PaymentStart:
        """Native: a QR payload (``weixin://…``) to show; H5: a URL to send the mobile browser to."""
        if request.scene not in ("native", "h5"):
            raise ValueError(f"WeChat Pay has no scene {request.scene!r} (native or h5)")
        payload: dict = {
            "appid": self.app_id,
            "mchid": self.mch_id,
            "description": truncate_utf8(request.subject, DESCRIPTION_MAX_BYTES),
            "out_trade_no": request.out_trade_no,
            "notify_url": request.notify_url,
            "amount": {"total": yuan_to_fen(request.amount), "currency": "CNY"},
        }
        if request.expires_at is not None:
            payload["time_expire"] = request.expires_at.astimezone(BEIJING).isoformat(timespec="seconds")
        if request.scene == "h5":
            if not request.client_ip:
                raise ValueError("WeChat H5 pay needs the buyer's IP address")
            payload["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        status, data = self.call("POST", f"/v3/pay/transactions/{request.scene}", payload)
        if status != 200:
            raise GatewayError(f"WeChat Pay refused the payment: {describe_error(data)}")
        if request.scene == "native":
            if not data.get("code_url"):
                raise GatewayError("WeChat Pay answered no code_url")
            return PaymentStart(qr_text=data["code_url"])
        if not data.get("h5_url"):
            raise GatewayError("WeChat Pay answered no h5_url")
        redirect_url = data["h5_url"]
        if request.return_url:
            # Documented: WeChat sends the buyer back to redirect_url after the H5 cashier.
            redirect_url += "&redirect_url=" + urllib.parse.quote(request.return_url, safe="")
        return PaymentStart(redirect_url=redirect_url)

    # --- notifications ----------------------------------------------------------------------

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentNotification:
        self.verify(headers, body)
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedNotification("the notification is not JSON") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
            raise MalformedNotification("the notification has no resource")
        if not envelope.get("id"):
            raise MalformedNotification("the notification has no id")
        if not str(envelope.get("event_type", "")).startswith("TRANSACTION."):
            raise MalformedNotification(f"not a payment event: {envelope.get('event_type')!r}")
        transaction = self.decrypt(envelope["resource"])
        return self.to_notification(transaction, event_id=str(envelope["id"]), envelope=envelope)

    def decrypt(self, resource: Mapping) -> dict:
        """AEAD_AES_256_GCM with the API v3 key; a failure means a forged or foreign resource."""
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise MalformedNotification(f"unsupported algorithm {resource.get('algorithm')!r}")
        ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
        associated_data = resource.get("associated_data") or ""
        if not isinstance(ciphertext, str) or not isinstance(nonce, str) or not isinstance(associated_data, str):
            raise MalformedNotification("the resource lacks ciphertext or nonce")
        try:
            plaintext = self.aead.decrypt(
                nonce.encode(), base64.b64decode(ciphertext, validate=True), associated_data.encode() or None
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise SignatureInvalid("the resource does not decrypt with the API v3 key") from None
        try:
            transaction = json.loads(plaintext)
        except (ValueError, UnicodeDecodeError):
            raise MalformedNotification("the decrypted resource is not JSON") from None
        if not isinstance(transaction, dict):
            raise MalformedNotification("the decrypted resource is not an object")
        return transaction

    def to_notification(
        self, transaction: Mapping, *, event_id: str, envelope: Mapping | None = None
    ) -> PaymentNotification:
        if transaction.get("mchid") != self.mch_id:
            raise MalformedNotification("the transaction belongs to another merchant")
        for name in ("out_trade_no", "trade_state", "appid"):
            if not transaction.get(name):
                raise MalformedNotification(f"the transaction has no {name}")
        trade_state = transaction["trade_state"]
        if trade_state not in TRADE_STATE_OUTCOMES:
            raise MalformedNotification(f"unknown trade_state {trade_state!r}")
        amount = transaction.get("amount")
        if not isinstance(amount, dict):
            raise MalformedNotification("the transaction has no amount")
        outcome = TRADE_STATE_OUTCOMES[trade_state]
        if outcome in (PaymentOutcome.SUCCEEDED, PaymentOutcome.REFUNDED) and not transaction.get("transaction_id"):
            raise MalformedNotification("a paid transaction has no transaction_id")
        currency = amount.get("currency") or "CNY"
        if not isinstance(currency, str):
            raise MalformedNotification("the currency is not a string")
        paid_at = None
        if transaction.get("success_time"):
            try:
                paid_at = datetime.fromisoformat(str(transaction["success_time"]))
            except ValueError:
                raise MalformedNotification("success_time is not an RFC 3339 time") from None
            if paid_at.tzinfo is None:
                raise MalformedNotification("success_time has no offset")
        return PaymentNotification(
            gateway=self.code,
            event_id=event_id,
            out_trade_no=transaction["out_trade_no"],
            gateway_trade_no=str(transaction.get("transaction_id", "")),
            app_id=transaction["appid"],
            # The order total (as Alipay's total_amount), not payer_total, which coupons reduce.
            amount=fen_to_yuan(amount.get("total"), name="amount.total"),
            currency=currency,
            outcome=outcome,
            paid_at=paid_at,
            raw={"notification": dict(envelope or {}), "transaction": dict(transaction)},
        )

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        """204 stops WeChat's retries; any 4xx/5xx answer makes it retry (up to 15 times in 24 h)."""
        if accepted:
            return NotificationAnswer(status=204, body="", content_type="application/json")
        return NotificationAnswer(
            status=500, body=json.dumps({"code": "FAIL", "message": "rejected"}), content_type="application/json"
        )

    # --- active query and refund ------------------------------------------------------------

    def download_statement(self, *, day) -> tuple[str, bytes]:
        return download_statement_of(self, day=day)

    def query_payment(self, *, out_trade_no: str) -> PaymentNotification | None:
        path = (
            f"/v3/pay/transactions/out-trade-no/{urllib.parse.quote(out_trade_no, safe='')}"
            f"?mchid={urllib.parse.quote(self.mch_id, safe='')}"
        )
        status, data = self.call("GET", path)
        if status == 404 and data.get("code") == "ORDER_NOT_EXIST":
            return None
        if status != 200:
            raise GatewayError(f"WeChat Pay query failed: {describe_error(data)}")
        if data.get("out_trade_no") != out_trade_no:
            raise GatewayError("WeChat Pay answered about another order")
        reference = data.get("transaction_id") or out_trade_no
        return self.to_notification(data, event_id=f"query:{reference}:{data.get('trade_state')}")

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_amount: Decimal, total_amount: Decimal, reason: str
    ) -> RefundResult:
        """One refund per ``out_refund_no``: WeChat answers a repeat with the same refund."""
        payload = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": yuan_to_fen(refund_amount), "total": yuan_to_fen(total_amount), "currency": "CNY"},
        }
        if reason:
            payload["reason"] = reason[:80]
        status, data = self.call("POST", "/v3/refund/domestic/refunds", payload)
        if status != 200:
            raise GatewayError(f"WeChat Pay refused the refund: {describe_error(data)}")
        refund_status = data.get("status")
        if refund_status not in ("SUCCESS", "PROCESSING"):
            # CLOSED or ABNORMAL (the buyer's card is gone): money did not go back; staff act.
            raise GatewayError(f"WeChat Pay refund status {refund_status!r}")
        return RefundResult(
            out_refund_no=out_refund_no,
            gateway_refund_no=str(data.get("refund_id", "")),
            amount=refund_amount,
            is_succeeded=refund_status == "SUCCESS",
            raw=data,
        )


def download_statement_of(gateway: WechatPayGateway, *, day) -> tuple[str, bytes]:
    """The day's trade bill (``GET /v3/bill/tradebill``, ``bill_type=ALL``): its signed answer
    names the file and its SHA1; the file is fetched with a signed request and checked."""
    status, data = gateway.call("GET", f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL")
    url = data.get("download_url") if status == 200 else None
    if not url:
        raise GatewayError(f"WeChat Pay gave no bill for {day}: {describe_error(data)}")
    split = urllib.parse.urlsplit(url)
    signed_path = split.path + (f"?{split.query}" if split.query else "")
    response = gateway.transport("GET", url, {"Authorization": gateway.authorization("GET", signed_path, "")}, None)
    if response.status != 200:
        raise GatewayError(f"WeChat Pay's bill download answered HTTP {response.status}")
    expected = str(data.get("hash_value", "")).lower()
    if expected and hashlib.sha1(response.body).hexdigest() != expected:  # noqa: S324 (the gateway's own checksum)
        raise GatewayError("WeChat Pay's bill does not match its SHA1")
    return "wechatpay", response.body


def describe_error(data: Mapping) -> str:
    """WeChat's own error code and message (never secrets), for logs and staff."""
    return " ".join(str(data.get(name)) for name in ("code", "message") if data.get(name)) or "no error code"


def error_words(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    return describe_error(data) if isinstance(data, dict) else ""
