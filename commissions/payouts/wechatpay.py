"""WeChat Pay merchant transfer to a user's change (商家转账, API v3).

``POST /v3/fund-app/mch-transfer/transfer-bills`` with ``out_bill_no`` = the withdrawal's number
(WeChat answers a repeat with the first bill), queried with
``GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}``. Requests carry the
``WECHATPAY2-SHA256-RSA2048`` Authorization header; every answer must verify with a platform
certificate / WeChat Pay public key (``kamen.rsa_signing.wechatpay_verify``). The payee's real
name is sent encrypted with the platform key (RSA-OAEP) and the key's serial in
``Wechatpay-Serial``. The payee account is the distributor's OpenID under the merchant's AppID.

States: SUCCESS → paid; FAIL / CANCELLED → failed; ACCEPTED, PROCESSING, WAIT_USER_CONFIRM
(the user confirms receipt in WeChat), TRANSFERING, CANCELING → pending. A signed 4xx refusal
(parameter error, no balance, no permission) means no bill was made → failed; 429, 5xx, an
unsigned or unverifiable answer, no answer → unknown, queried later.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from kamen import rsa_signing

from . import (
    NotificationAnswer,
    NotificationRefused,
    PayoutAdapter,
    PayoutError,
    PayoutNotification,
    PayoutOutcome,
    PayoutResult,
    PayoutUnknown,
)

TRANSFER_PATH = "/v3/fund-app/mch-transfer/transfer-bills"
OPENID = re.compile(r"[A-Za-z0-9_-]{20,64}", re.ASCII)
PAID_STATES = {"SUCCESS"}
FAILED_STATES = {"FAIL", "CANCELLED"}
PENDING_STATES = {"ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING", "CANCELING"}
REMARK_MAX_CHARS = 32


def describe(data: Mapping) -> str:
    return " ".join(str(data.get(name)) for name in ("code", "message") if data.get(name))[:200] or "no error code"


class WechatPayoutAdapter(PayoutAdapter):
    def __init__(
        self,
        *,
        app_id: str,
        mch_id: str,
        merchant_private_key_pem: str,
        merchant_serial_no: str,
        platform_keys: Mapping[str, str],
        api_base: str = "https://api.mch.weixin.qq.com",
        transfer_scene_id: str = "1005",
        scene_report_infos: tuple[tuple[str, str], ...] = (("岗位类型", "分销推广员"), ("报酬说明", "佣金提现")),
        notify_url: str = "",
        api_v3_key: str = "",
        transport: rsa_signing.Transport | None = None,
    ):
        if not app_id or not mch_id or not merchant_serial_no:
            raise ValueError("the app id, merchant id and merchant serial number are required")
        if not platform_keys:
            raise ValueError("at least one platform certificate or WeChat Pay public key is required")
        self.app_id = app_id
        self.mch_id = mch_id
        self.private_key = rsa_signing.load_private_key(merchant_private_key_pem)
        self.merchant_serial_no = merchant_serial_no
        self.platform_keys = {serial: rsa_signing.load_platform_key(pem) for serial, pem in platform_keys.items()}
        self.api_base = api_base.rstrip("/")
        self.transfer_scene_id = transfer_scene_id
        self.scene_report_infos = scene_report_infos
        self.notify_url = notify_url
        self.aead = AESGCM(api_v3_key.encode()) if len(api_v3_key.encode()) == 32 else None
        self.transport = transport or rsa_signing.urllib_transport

    def __repr__(self) -> str:  # never show keys
        return f"<WechatPayoutAdapter mch_id={self.mch_id}>"

    def call(self, method: str, path: str, payload: Mapping | None = None) -> tuple[int, dict]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if payload is not None else ""
        headers = {
            "Authorization": rsa_signing.wechatpay_authorization(
                private_key=self.private_key,
                mch_id=self.mch_id,
                serial_no=self.merchant_serial_no,
                method=method,
                url_path=path,
                body=body,
            ),
            "Accept": "application/json",
            "User-Agent": "Kamen/1.0",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
            headers["Wechatpay-Serial"] = next(iter(self.platform_keys))
        try:
            data = body.encode() if payload is not None else None
            response = self.transport(method, self.api_base + path, headers, data)
        except OSError as error:
            raise PayoutUnknown(f"WeChat Pay unreachable: {error}") from None
        if response.status >= 500 or response.status == 429:
            raise PayoutUnknown(f"WeChat Pay answered HTTP {response.status}")
        try:
            rsa_signing.wechatpay_verify(self.platform_keys, response.headers, response.body)
        except rsa_signing.SignatureMismatch as error:
            raise PayoutUnknown(f"WeChat Pay's answer does not verify: {error}") from None
        try:
            data = json.loads(response.body) if response.body else {}
        except (ValueError, UnicodeDecodeError):
            raise PayoutUnknown("WeChat Pay answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise PayoutUnknown("WeChat Pay answered something that is not a JSON object")
        return response.status, data

    def pay(self, *, payout_no, method, account, holder_name, amount) -> PayoutResult:
        if not OPENID.fullmatch(account or ""):
            raise PayoutError("微信收款账户应为公众号下的 OpenID（20–64 位字母、数字、下划线或减号）")
        fen = int(amount * 100)
        if fen <= 0 or fen != amount * 100:
            raise PayoutError("转账金额应为正的整分")
        payload = {
            "appid": self.app_id,
            "out_bill_no": payout_no,
            "transfer_scene_id": self.transfer_scene_id,
            "openid": account,
            "transfer_amount": fen,
            "transfer_remark": f"佣金提现 {payout_no}"[:REMARK_MAX_CHARS],
            "user_recv_perception": "劳务报酬",
            "transfer_scene_report_infos": [
                {"info_type": info_type, "info_content": content} for info_type, content in self.scene_report_infos
            ],
        }
        if holder_name:
            payload["user_name"] = rsa_signing.rsa_oaep_encrypt(next(iter(self.platform_keys.values())), holder_name)
        if self.notify_url:
            payload["notify_url"] = self.notify_url
        status, data = self.call("POST", TRANSFER_PATH, payload)
        if status >= 400:
            raise PayoutError(f"微信支付拒绝转账：{describe(data)}")
        return self._result(data, payout_no=payout_no, fen=None)

    def query(self, *, payout_no, amount) -> PayoutResult | None:
        path = f"{TRANSFER_PATH}/out-bill-no/{urllib.parse.quote(payout_no, safe='')}"
        status, data = self.call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise PayoutUnknown(f"WeChat Pay transfer query failed: {describe(data)}")
        return self._result(data, payout_no=payout_no, fen=int(amount * 100))

    def parse_notification(self, *, body: bytes, headers) -> PayoutNotification:
        """``MCHTRANSFER.BILL.FINISHED``: signed like every answer, the bill encrypted with the
        API v3 key (AEAD_AES_256_GCM)."""
        try:
            rsa_signing.wechatpay_verify(self.platform_keys, headers, body)
        except rsa_signing.SignatureMismatch as error:
            raise NotificationRefused(str(error)) from None
        if self.aead is None:
            raise NotificationRefused("no API v3 key configured to read notifications")
        try:
            envelope = json.loads(body)
            if not str(envelope.get("event_type", "")).startswith("MCHTRANSFER."):
                raise ValueError(f"not a transfer event: {envelope.get('event_type')!r}")
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise ValueError("unsupported algorithm")
            plain = self.aead.decrypt(
                resource["nonce"].encode(),
                base64.b64decode(resource["ciphertext"], validate=True),
                (resource.get("associated_data") or "").encode() or None,
            )
            bill = json.loads(plain)
            if bill.get("mch_id") not in (None, self.mch_id):
                raise ValueError("a bill of another merchant")
            payout_no = str(bill["out_bill_no"])
            fen = bill.get("transfer_amount")
            result = self._result(bill, payout_no=payout_no, fen=None)
        except (ValueError, KeyError, TypeError, AttributeError, InvalidTag, binascii.Error, PayoutUnknown) as error:
            raise NotificationRefused(f"unreadable notification: {error}") from None
        amount = (Decimal(fen) / 100).quantize(Decimal("0.01")) if type(fen) is int else None
        return PayoutNotification(payout_no=payout_no, result=result, amount=amount)

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        """2xx stops WeChat's retries; anything else is retried."""
        if accepted:
            return NotificationAnswer(status=204, body="", content_type="application/json")
        return NotificationAnswer(
            status=500, body=json.dumps({"code": "FAIL", "message": "rejected"}), content_type="application/json"
        )

    def _result(self, data: Mapping, *, payout_no: str, fen: int | None) -> PayoutResult:
        if data.get("out_bill_no") != payout_no:
            raise PayoutUnknown("WeChat Pay answered about another transfer")
        if fen is not None and data.get("transfer_amount") not in (None, fen):
            raise PayoutUnknown(f"WeChat Pay reports {data.get('transfer_amount')} fen for a transfer of {fen}")
        state = str(data.get("state", ""))
        provider_no = str(data.get("transfer_bill_no", ""))
        if state in PAID_STATES:
            return PayoutResult(provider_payout_no=provider_no, outcome=PayoutOutcome.PAID)
        if state in FAILED_STATES:
            reason = data.get("fail_reason") or state
            return PayoutResult(
                provider_payout_no=provider_no, outcome=PayoutOutcome.FAILED, failure_reason=f"微信转账失败：{reason}"
            )
        if state in PENDING_STATES:
            return PayoutResult(provider_payout_no=provider_no, outcome=PayoutOutcome.PENDING)
        raise PayoutUnknown(f"WeChat transfer state {state!r}")


def from_settings() -> WechatPayoutAdapter:
    """The adapter on the payment app's credentials (WECHATPAY_*); platform keys as
    ``SERIAL=PEM-or-path`` entries, comma-separated (WECHATPAY_PLATFORM_CERTS)."""
    from .alipay import _key_text

    keys = {}
    for entry in filter(None, (part.strip() for part in settings.WECHATPAY_PLATFORM_CERTS.split(","))):
        serial, separator, value = entry.partition("=")
        if not separator:
            raise ValueError("WECHATPAY_PLATFORM_CERTS: payouts need SERIAL=PEM-or-path entries")
        keys[serial] = _key_text(value)
    options = {"api_base": settings.WECHATPAY_API_BASE} if getattr(settings, "WECHATPAY_API_BASE", "") else {}
    return WechatPayoutAdapter(
        app_id=settings.WECHATPAY_APP_ID,
        mch_id=settings.WECHATPAY_MCH_ID,
        merchant_private_key_pem=_key_text(settings.WECHATPAY_PRIVATE_KEY),
        merchant_serial_no=settings.WECHATPAY_SERIAL_NO,
        platform_keys=keys,
        transfer_scene_id=getattr(settings, "WECHATPAY_TRANSFER_SCENE_ID", "") or "1005",
        api_v3_key=settings.WECHATPAY_API_V3_KEY,
        notify_url=_notify_url("wechat"),
        **options,
    )


def _notify_url(method: str) -> str:
    from django.urls import reverse

    site = (getattr(settings, "SITE_URL", "") or "").rstrip("/")
    return f"{site}{reverse('commissions:payout-notify', args=[method])}" if site.startswith("https://") else ""
