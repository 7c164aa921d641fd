"""Build the real gateway adapters the merchant configured through the environment.

A gateway none of whose settings is set is simply off. One that is half set is a deployment
mistake that would otherwise surface as a failed payment in front of a buyer, so it stops the
start-up with ImproperlyConfigured naming the missing or unreadable setting — never its value,
since most of these values are private keys (docs/payments.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from cryptography import x509
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orders.gateways.alipay import AlipayGateway, load_private_key, load_public_key
from orders.gateways.base import PaymentGateway, Transport
from orders.gateways.wechatpay import WechatPayGateway, load_platform_key

ALIPAY_REQUIRED = ("ALIPAY_APP_ID", "ALIPAY_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY")
ALIPAY_OPTIONAL = ("ALIPAY_SELLER_ID", "ALIPAY_GATEWAY_URL")
WECHATPAY_REQUIRED = (
    "WECHATPAY_APP_ID",
    "WECHATPAY_MCH_ID",
    "WECHATPAY_API_V3_KEY",
    "WECHATPAY_PRIVATE_KEY",
    "WECHATPAY_SERIAL_NO",
    "WECHATPAY_PLATFORM_CERTS",
)
WECHATPAY_OPTIONAL = ("WECHATPAY_API_BASE",)
SERIAL_PATTERN = re.compile(r"[A-Za-z0-9_]+")


def real_gateways_from_settings(*, transport: Transport | None = None) -> dict[str, PaymentGateway]:
    """``{"alipay": …, "wechatpay": …}`` for the gateways whose settings are present."""
    gateways: dict[str, PaymentGateway] = {}
    if is_configuring(ALIPAY_REQUIRED + ALIPAY_OPTIONAL):
        require(ALIPAY_REQUIRED)
        gateways["alipay"] = build_alipay(transport)
    if is_configuring(WECHATPAY_REQUIRED + WECHATPAY_OPTIONAL):
        require(WECHATPAY_REQUIRED)
        gateways["wechatpay"] = build_wechatpay(transport)
    return gateways


def build_alipay(transport: Transport | None) -> AlipayGateway:
    private_key = key_material("ALIPAY_PRIVATE_KEY")
    public_key = key_material("ALIPAY_PUBLIC_KEY")
    check_loads("ALIPAY_PRIVATE_KEY", private_key, load_private_key, "an RSA private key")
    check_loads("ALIPAY_PUBLIC_KEY", public_key, load_public_key, "an RSA public key")
    options = {"gateway_url": setting("ALIPAY_GATEWAY_URL")} if setting("ALIPAY_GATEWAY_URL") else {}
    return AlipayGateway(
        app_id=setting("ALIPAY_APP_ID"),
        app_private_key_pem=private_key,
        alipay_public_key_pem=public_key,
        seller_id=setting("ALIPAY_SELLER_ID"),
        transport=transport,
        **options,
    )


def build_wechatpay(transport: Transport | None) -> WechatPayGateway:
    if len(setting("WECHATPAY_API_V3_KEY").encode("utf-8")) != 32:
        raise ImproperlyConfigured("WECHATPAY_API_V3_KEY must be the 32-character API v3 key")
    private_key = key_material("WECHATPAY_PRIVATE_KEY")
    check_loads("WECHATPAY_PRIVATE_KEY", private_key, load_private_key, "an RSA private key")
    options = {"api_base": setting("WECHATPAY_API_BASE")} if setting("WECHATPAY_API_BASE") else {}
    return WechatPayGateway(
        app_id=setting("WECHATPAY_APP_ID"),
        mch_id=setting("WECHATPAY_MCH_ID"),
        api_v3_key=setting("WECHATPAY_API_V3_KEY"),
        merchant_private_key_pem=private_key,
        merchant_serial_no=setting("WECHATPAY_SERIAL_NO"),
        platform_certificates=platform_certificates(),
        transport=transport,
        **options,
    )


def platform_certificates() -> dict[str, str]:
    """Parse WECHATPAY_PLATFORM_CERTS: comma-separated ``SERIAL=PEM-or-path`` or ``cert-path``.

    A certificate's serial is read from the certificate itself; a WeChat Pay public key
    (``PUB_KEY_ID_…``) has none, so it must be given as ``PUB_KEY_ID_…=/path/pub_key.pem``.
    """
    certificates: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in setting("WECHATPAY_PLATFORM_CERTS").split(","))):
        serial, separator, value = entry.partition("=")
        if not separator or not SERIAL_PATTERN.fullmatch(serial):
            serial, value = "", entry
        pem = key_material("WECHATPAY_PLATFORM_CERTS", value)
        check_loads("WECHATPAY_PLATFORM_CERTS", pem, load_platform_key, "a certificate or RSA public key")
        if not serial:
            try:
                serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "X")
            except ValueError:
                raise ImproperlyConfigured(
                    "WECHATPAY_PLATFORM_CERTS: a public key needs its id, as PUB_KEY_ID_…=/path/to/key.pem"
                ) from None
        certificates[serial] = pem
    if not certificates:
        raise ImproperlyConfigured("WECHATPAY_PLATFORM_CERTS names no certificate")
    return certificates


def setting(name: str) -> str:
    return str(getattr(settings, name, "") or "").strip()


def is_configuring(names: tuple[str, ...]) -> bool:
    return any(setting(name) for name in names)


def require(names: tuple[str, ...]) -> None:
    for name in names:
        if not setting(name):
            raise ImproperlyConfigured(f"{name} is not set (the gateway is partly configured; see docs/payments.md)")


def key_material(name: str, value: str | None = None) -> str:
    """The key text from a setting: PEM as is, a file path read, bare base64 as is."""
    value = setting(name) if value is None else value.strip()
    if value.startswith("-----BEGIN"):
        return value.replace("\\n", "\n")  # one-line PEM with escaped newlines, as env files hold it
    if value.startswith(("/", "./", "../", "~")):
        path = Path(value).expanduser()
        try:
            return path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise ImproperlyConfigured(f"{name}: cannot read the key file {path}") from None
    return value


def check_loads(name: str, text: str, loader, what: str) -> None:
    try:
        loader(text)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(f"{name} is not {what} (PEM text, base64 DER or a file path)") from None


# --- fees (docs/adr/0020) ----------------------------------------------------------------------
@dataclass(frozen=True)
class FeeSchedule:
    """What a gateway charges per payment: ``rate`` (a fraction: 0.006 for 0.6 %) of the amount,
    rounded half up to the fen as the gateways round, at least ``minimum``, never more than the
    payment; ``is_refunded``: the gateway gives the fee back, in proportion, with a refund."""

    rate: Decimal = Decimal("0")
    minimum: Decimal = Decimal("0.00")
    is_refunded: bool = False

    def fee(self, amount: Decimal) -> Decimal:
        amount = Decimal(amount)
        if amount <= 0:
            return Decimal("0.00")
        fee = (amount * self.rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return min(max(fee, self.minimum), amount)


FEE_PREFIXES = {"alipay": "ALIPAY", "wechatpay": "WECHATPAY", "sandbox": "SANDBOX"}
MAX_FEE_PERCENT = Decimal("10")  # above this a rate is a typo (6 for 0.6), not a gateway's price


def fee_schedule(code: str) -> FeeSchedule:
    """The merchant's fee settings of gateway ``code``; no fee for the ways in that are not a
    gateway (staff 补单, wallet). A setting that is not a number, negative, above 10 % or finer
    than the fen raises ImproperlyConfigured naming it."""
    prefix = FEE_PREFIXES.get(code)
    if prefix is None:
        return FeeSchedule()
    rate = _decimal_setting(f"{prefix}_FEE_RATE", "0")
    if not (0 <= rate <= MAX_FEE_PERCENT) or rate != rate.quantize(Decimal("0.0001")):
        raise ImproperlyConfigured(f"{prefix}_FEE_RATE must be a percentage from 0 to 10 with at most 4 decimals")
    minimum = _decimal_setting(f"{prefix}_FEE_MINIMUM", "0")
    if minimum < 0 or minimum != minimum.quantize(Decimal("0.01")):
        raise ImproperlyConfigured(f"{prefix}_FEE_MINIMUM must be an amount in yuan, whole fen, not negative")
    refunded = setting(f"{prefix}_FEE_REFUNDED") or "0"
    if refunded not in ("0", "1"):
        raise ImproperlyConfigured(f"{prefix}_FEE_REFUNDED must be 1 (the gateway returns the fee) or 0 (keeps it)")
    return FeeSchedule(rate=rate / 100, minimum=minimum.quantize(Decimal("0.01")), is_refunded=refunded == "1")


def _decimal_setting(name: str, default: str) -> Decimal:
    raw = setting(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} is not a number") from None
    if not value.is_finite():
        raise ImproperlyConfigured(f"{name} is not a number")
    return value


def check_fee_settings() -> None:
    """Every gateway's fee settings, checked at start-up (kamen.setting_checks)."""
    for code in FEE_PREFIXES:
        fee_schedule(code)
