"""Alipay single transfer to an Alipay account (转账到支付宝账户, alipay.fund.trans.uni.transfer).

Signed like the payment adapter (RSA2 over the sorted parameters, ``kamen.rsa_signing``); the
answer's ``alipay_fund_trans_uni_transfer_response`` node is verified against Alipay's public key
over its exact raw text. ``out_biz_no`` is the withdrawal's number: Alipay answers a repeat with
the first transfer, so sending again never pays twice.

How answers map (Alipay's published codes; only ``sub_code`` decides, never ``sub_msg``):

- code 10000, status SUCCESS → paid; DEALING / WAIT_PAY… → pending (query later);
  status FAIL or REFUND (the payee's account bounced it back) → failed.
- code 40004 with a sub_code other than SYSTEM_ERROR → failed (payee does not exist, name does
  not match, merchant balance too low, limits…): nothing was transferred.
- code 20000 (service unavailable), 40004 SYSTEM_ERROR, an unsigned or badly signed answer, no
  answer at all → unknown: ``alipay.fund.trans.common.query`` on ``out_biz_no`` decides later.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

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

TRANSFER_METHOD = "alipay.fund.trans.uni.transfer"
QUERY_METHOD = "alipay.fund.trans.common.query"
CHANGED_MESSAGE = "alipay.fund.trans.order.changed"
PRODUCT_CODE = "TRANS_ACCOUNT_NO_PWD"
BIZ_SCENE = "DIRECT_TRANSFER"
SUCCESS_CODE = "10000"
BUSINESS_FAILED_CODE = "40004"
UNKNOWN_SUB_CODES = {"SYSTEM_ERROR", "ISP.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"}
NOT_FOUND_SUB_CODES = {"ORDER_NOT_EXIST", "ORDER_NOT_EXISTS"}
ALIPAY_USER_ID = re.compile(r"2088\d{12}", re.ASCII)
LOGON_ID = re.compile(r"1\d{10}|[^@\s]{1,64}@[^@\s]+\.[^@\s]+", re.ASCII)
PENDING_STATUSES = {"DEALING", "WAIT_PAY", "INIT"}
FAILED_STATUSES = {"FAIL", "REFUND", "CLOSED"}


def _beijing_now() -> str:
    from datetime import timedelta, timezone

    return datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")


def payee_identity(account: str) -> tuple[str, str]:
    """(identity, identity_type) for an Alipay account; a malformed account is refused."""
    if ALIPAY_USER_ID.fullmatch(account):
        return account, "ALIPAY_USER_ID"
    if LOGON_ID.fullmatch(account):
        return account, "ALIPAY_LOGON_ID"
    raise PayoutError("支付宝账号格式不正确（应为手机号、邮箱或 2088 开头的用户号）")


def describe(node: Mapping) -> str:
    return " ".join(str(node.get(name)) for name in ("code", "msg", "sub_code", "sub_msg") if node.get(name))[:200]


class AlipayPayoutAdapter(PayoutAdapter):
    def __init__(
        self,
        *,
        app_id: str,
        app_private_key_pem: str,
        alipay_public_key_pem: str,
        gateway_url: str = "https://openapi.alipay.com/gateway.do",
        transport: rsa_signing.Transport | None = None,
        order_title: str = "佣金提现",
    ):
        if not app_id:
            raise ValueError("the Alipay app id is required")
        self.app_id = app_id
        self.private_key = rsa_signing.load_private_key(app_private_key_pem)
        self.alipay_public_key = rsa_signing.load_public_key(alipay_public_key_pem)
        self.gateway_url = gateway_url
        self.transport = transport or rsa_signing.urllib_transport
        self.order_title = order_title

    def __repr__(self) -> str:  # never show keys
        return f"<AlipayPayoutAdapter app_id={self.app_id}>"

    # --- protocol -------------------------------------------------------------------------------
    def signed_params(self, method: str, biz_content: Mapping) -> dict[str, str]:
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": _beijing_now(),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = rsa_signing.rsa2_sign(self.private_key, rsa_signing.sign_content(params))
        return params

    def call(self, method: str, biz_content: Mapping) -> dict:
        """The verified ``…_response`` node; PayoutUnknown when there is none we can trust."""
        params = self.signed_params(method, biz_content)
        try:
            response = self.transport(
                "POST",
                f"{self.gateway_url}?charset=utf-8",
                {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "Accept": "application/json"},
                urllib.parse.urlencode(params).encode(),
            )
        except OSError as error:
            raise PayoutUnknown(f"Alipay unreachable: {error}") from None
        if response.status != 200:
            raise PayoutUnknown(f"Alipay answered HTTP {response.status}")
        node_name = method.replace(".", "_") + "_response"
        try:
            text = response.body.decode("utf-8")
            raw_node, signature = rsa_signing.extract_response_node(text, node_name)
            if raw_node is None:
                raw_node, signature = rsa_signing.extract_response_node(text, "error_response")
            node = json.loads(raw_node) if raw_node is not None else None
        except (UnicodeDecodeError, ValueError):
            raise PayoutUnknown("Alipay answered something that is not its JSON") from None
        if not isinstance(node, dict):
            raise PayoutUnknown(f"Alipay's answer has no {node_name}")
        if signature is None:
            # Only gateway-level refusals (bad app id, bad request signature) come unsigned:
            # the transfer was not accepted, but we cannot prove it, so we ask again later.
            raise PayoutUnknown(f"Alipay's answer is not signed: {describe(node)}")
        try:
            rsa_signing.rsa2_verify(self.alipay_public_key, raw_node.encode("utf-8"), signature)
        except rsa_signing.SignatureMismatch as error:
            raise PayoutUnknown(f"Alipay's answer does not verify: {error}") from None
        return node

    # --- the adapter ----------------------------------------------------------------------------
    def pay(self, *, payout_no, method, account, holder_name, amount) -> PayoutResult:
        identity, identity_type = payee_identity(account)
        payee = {"identity": identity, "identity_type": identity_type}
        if holder_name:
            payee["name"] = holder_name  # required for a logon id; Alipay checks it matches
        elif identity_type == "ALIPAY_LOGON_ID":
            raise PayoutError("支付宝登录号转账需要收款人实名姓名")
        node = self.call(
            TRANSFER_METHOD,
            {
                "out_biz_no": payout_no,
                "trans_amount": f"{amount:.2f}",
                "product_code": PRODUCT_CODE,
                "biz_scene": BIZ_SCENE,
                "order_title": self.order_title,
                "payee_info": payee,
                "remark": f"提现 {payout_no}",
            },
        )
        code, sub_code = node.get("code"), str(node.get("sub_code", ""))
        if code == SUCCESS_CODE:
            return self._result(node, payout_no=payout_no, amount=None)
        if code == BUSINESS_FAILED_CODE and sub_code not in UNKNOWN_SUB_CODES:
            raise PayoutError(f"支付宝拒绝转账：{describe(node)}")
        raise PayoutUnknown(f"Alipay transfer unknown: {describe(node)}")

    def query(self, *, payout_no, amount) -> PayoutResult | None:
        node = self.call(
            QUERY_METHOD, {"out_biz_no": payout_no, "product_code": PRODUCT_CODE, "biz_scene": BIZ_SCENE}
        )
        code, sub_code = node.get("code"), str(node.get("sub_code", ""))
        if code == BUSINESS_FAILED_CODE and sub_code in NOT_FOUND_SUB_CODES:
            return None
        if code != SUCCESS_CODE:
            raise PayoutUnknown(f"Alipay transfer query failed: {describe(node)}")
        return self._result(node, payout_no=payout_no, amount=amount)

    def parse_notification(self, *, body: bytes, headers) -> PayoutNotification:
        """``alipay.fund.trans.order.changed``: form parameters signed (RSA2) over the sorted
        parameters except ``sign`` and ``sign_type``; the transfer in ``biz_content``."""
        try:
            params = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise NotificationRefused("not a form in UTF-8") from None
        if params.get("sign_type", "RSA2") != "RSA2" or not params.get("sign"):
            raise NotificationRefused("not RSA2 signed")
        content = rsa_signing.sign_content(params, exclude=("sign", "sign_type"), skip_empty=False)
        try:
            rsa_signing.rsa2_verify(self.alipay_public_key, content.encode("utf-8"), params["sign"])
        except rsa_signing.SignatureMismatch as error:
            raise NotificationRefused(str(error)) from None
        if params.get("msg_method") != CHANGED_MESSAGE or params.get("app_id") not in (None, self.app_id):
            raise NotificationRefused(f"not a transfer change of this app: {params.get('msg_method')!r}")
        try:
            node = json.loads(params.get("biz_content", ""))
            payout_no = str(node["out_biz_no"])
            amount = Decimal(str(node["trans_amount"])) if node.get("trans_amount") is not None else None
            result = self._result(node, payout_no=payout_no, amount=None)
        except (ValueError, KeyError, TypeError, InvalidOperation, PayoutUnknown) as error:
            raise NotificationRefused(f"unreadable transfer: {error}") from None
        return PayoutNotification(payout_no=payout_no, result=result, amount=amount)

    def answer_notification(self, *, accepted: bool) -> NotificationAnswer:
        """Alipay stops retrying only on the exact body ``success``."""
        return NotificationAnswer(status=200, body="success" if accepted else "fail")

    def _result(self, node: Mapping, *, payout_no: str, amount: Decimal | None) -> PayoutResult:
        if node.get("out_biz_no") not in (None, payout_no):
            raise PayoutUnknown("Alipay answered about another transfer")
        if amount is not None and node.get("trans_amount") is not None:
            try:
                answered = Decimal(str(node["trans_amount"]))
            except InvalidOperation:
                raise PayoutUnknown("Alipay's trans_amount is not an amount") from None
            if answered != amount:
                raise PayoutUnknown(f"Alipay reports {answered} for a transfer of {amount}")
        status = str(node.get("status", ""))
        provider_no = str(node.get("order_id") or node.get("pay_fund_order_id") or "")
        if status == "SUCCESS":
            return PayoutResult(provider_payout_no=provider_no, outcome=PayoutOutcome.PAID)
        if status in FAILED_STATUSES:
            reason = node.get("fail_reason") or node.get("error_code") or status
            return PayoutResult(
                provider_payout_no=provider_no, outcome=PayoutOutcome.FAILED, failure_reason=f"支付宝转账失败：{reason}"
            )
        if status in PENDING_STATUSES:
            return PayoutResult(provider_payout_no=provider_no, outcome=PayoutOutcome.PENDING)
        raise PayoutUnknown(f"Alipay transfer status {status!r}")


def _key_text(value: str) -> str:
    value = (value or "").strip()
    if value.startswith("-----BEGIN"):
        return value.replace("\\n", "\n")
    if value.startswith(("/", "./", "../", "~")):
        from pathlib import Path

        return Path(value).expanduser().read_text(encoding="ascii")
    return value


def from_settings() -> AlipayPayoutAdapter:
    """The adapter on the payment app's credentials (ALIPAY_*): the transfer product is signed
    on the same Alipay application."""
    options = {"gateway_url": settings.ALIPAY_GATEWAY_URL} if getattr(settings, "ALIPAY_GATEWAY_URL", "") else {}
    return AlipayPayoutAdapter(
        app_id=settings.ALIPAY_APP_ID,
        app_private_key_pem=_key_text(settings.ALIPAY_PRIVATE_KEY),
        alipay_public_key_pem=_key_text(settings.ALIPAY_PUBLIC_KEY),
        **options,
    )
