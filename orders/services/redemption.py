"""Redemption (核销): voucher-style products give the buyer one code per unit, which staff or a
store redeem exactly once.

- ``issue_vouchers`` runs after fulfilment delivered a redeemable product; issuing twice issues
  once (the order row lock and the unique (order, product, sequence) constraint).
- ``redeem_voucher`` locks the voucher row, so of any number of counters redeeming the same
  code at the same instant exactly one succeeds; the partial unique constraint on accepted
  redemptions is the backstop. Every attempt, accepted or refused, is logged with who, where,
  when and from which IP; a refusal says when and by whom the voucher was redeemed.
- Products in ``code_and_dynamic`` mode also need the 30-second dynamic code from the buyer's
  page: a TOTP (RFC 6238: HMAC-SHA1 of the voucher's secret and the 30 s time step, 6 digits),
  accepted for the current step and one either side, so a screenshot stops working within a
  minute and a half.

Codes are stored encrypted and found by their keyed blind index; no code is ever logged.
"""

import base64
import hashlib
import hmac
import io
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from catalog.models import BundleItem, Product, ProductType
from catalog.models.products import RedemptionMode
from kamen import crypto
from kamen.audit import record_audit
from orders.models import Order, OrderStatus, RedemptionOutcome, Voucher, VoucherRedemption

__all__ = [
    "DYNAMIC_CODE_STEP_SECONDS",
    "VoucherRefused",
    "current_dynamic_code",
    "dynamic_code_at",
    "issue_vouchers",
    "normalise_code",
    "redeem_voucher",
    "voucher_code",
    "voucher_qr_png",
    "vouchers_for_buyer",
]

logger = logging.getLogger(__name__)

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a counter
CODE_LENGTH = 16  # 80 bits
DYNAMIC_CODE_STEP_SECONDS = 30
DYNAMIC_CODE_DIGITS = 6
DYNAMIC_CODE_WINDOW = 1  # steps accepted either side of now (clock drift, a slow cashier)
CODE_CONTEXT = b"orders.voucher.code"
SECRET_CONTEXT = b"orders.voucher.secret"
STORE_LABEL_MAX = 60
# Orders whose vouchers may be issued: the goods were paid for and are being or were delivered.
_ISSUABLE = (
    OrderStatus.PAID,
    OrderStatus.FULFILLING,
    OrderStatus.COMPLETED,
    OrderStatus.PARTIALLY_FULFILLED,
    OrderStatus.PARTIALLY_REFUNDED,
)


class VoucherRefused(Exception):
    """A redemption the counter must not honour; ``str()`` is the message for the staff."""

    def __init__(self, message: str, *, outcome: str, voucher: Voucher | None = None):
        super().__init__(message)
        self.outcome = outcome
        self.voucher = voucher


# --- codes ---------------------------------------------------------------------------------


def normalise_code(raw: str) -> str:
    """Upper case, separators and spaces dropped: what the index is computed over."""
    return re.sub(r"[^0-9A-Z]", "", (raw or "").upper())


def _format_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _code_index(code: str) -> str:
    return crypto.blind_index("voucher:" + normalise_code(code))


def voucher_code(voucher: Voucher) -> str:
    """The code as the buyer sees it (grouped by four). Decrypts: buyer pages only."""
    code = crypto.decrypt(key_id=voucher.code_key_id, blob=bytes(voucher.code_ciphertext), associated_data=CODE_CONTEXT)
    return _format_code(code)


def _secret(voucher: Voucher) -> bytes:
    encoded = crypto.decrypt(
        key_id=voucher.secret_key_id, blob=bytes(voucher.secret_ciphertext), associated_data=SECRET_CONTEXT
    )
    return base64.b32decode(encoded)


def dynamic_code_at(secret: bytes, step: int) -> str:
    """RFC 4226 HOTP of ``step``, which for ``step = unix_time // 30`` is RFC 6238 TOTP."""
    digest = hmac.new(secret, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return f"{value % 10**DYNAMIC_CODE_DIGITS:0{DYNAMIC_CODE_DIGITS}d}"


def _step(now: datetime) -> int:
    return int(now.timestamp()) // DYNAMIC_CODE_STEP_SECONDS


def current_dynamic_code(*, voucher: Voucher, now: datetime | None = None) -> tuple[str, int]:
    """(code, seconds until it changes) for the buyer's page."""
    now = now or timezone.now()
    seconds_left = DYNAMIC_CODE_STEP_SECONDS - int(now.timestamp()) % DYNAMIC_CODE_STEP_SECONDS
    return dynamic_code_at(_secret(voucher), _step(now)), seconds_left


def _dynamic_code_matches(voucher: Voucher, submitted: str, now: datetime) -> bool:
    submitted = re.sub(r"\s", "", submitted or "")
    if not re.fullmatch(rf"\d{{{DYNAMIC_CODE_DIGITS}}}", submitted, re.ASCII):
        return False
    secret, step = _secret(voucher), _step(now)
    # Compare every candidate, constant-time, so the timing does not say which step matched.
    results = [
        hmac.compare_digest(dynamic_code_at(secret, step + delta), submitted)
        for delta in range(-DYNAMIC_CODE_WINDOW, DYNAMIC_CODE_WINDOW + 1)
    ]
    return any(results)


def voucher_qr_png(*, voucher: Voucher) -> bytes:
    """A PNG QR code carrying the voucher code (what the redemption page's scanner reads)."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=2)
    qr.add_data(voucher_code(voucher))
    qr.make(fit=True)
    buffer = io.BytesIO()
    qr.make_image().save(buffer)
    return buffer.getvalue()


# --- issuing -------------------------------------------------------------------------------


def _redeemable_parts(order: Order) -> list[tuple[Product, int]]:
    product = order.product
    if product.product_type == ProductType.BUNDLE:
        items = BundleItem.objects.filter(bundle=product).select_related("component").order_by("component_id")
        return [
            (item.component, item.quantity * order.quantity)
            for item in items
            if item.component.redemption_mode != RedemptionMode.NONE
        ]
    if product.redemption_mode == RedemptionMode.NONE:
        return []
    return [(product, order.quantity)]


def _new_voucher(order: Order, product: Product, sequence: int) -> Voucher:
    code = "".join(secrets.choice(CODE_ALPHABET) for _i in range(CODE_LENGTH))
    code_key_id, code_blob = crypto.encrypt(code, associated_data=CODE_CONTEXT)
    secret_key_id, secret_blob = crypto.encrypt(
        base64.b32encode(secrets.token_bytes(20)).decode(), associated_data=SECRET_CONTEXT
    )
    return Voucher(
        order=order,
        product=product,
        sequence=sequence,
        code_index=_code_index(code),
        code_ciphertext=code_blob,
        code_key_id=code_key_id,
        code_last4=code[-4:],
        secret_ciphertext=secret_blob,
        secret_key_id=secret_key_id,
        requires_dynamic_code=product.redemption_mode == RedemptionMode.CODE_AND_DYNAMIC,
    )


def issue_vouchers(*, order: Order) -> list[Voucher]:
    """One voucher per delivered unit of every redeemable product of ``order``; the ones that
    exist already are kept, so fulfilment may call this on every run. Returns all of them."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).select_related("product").get(pk=order.pk)
        parts = _redeemable_parts(locked)
        if parts and locked.status not in _ISSUABLE:
            raise ValidationError(
                _("订单当前状态为“%(status)s”，不能发放核销券") % {"status": locked.get_status_display()}
            )
        existing = set(Voucher.objects.filter(order=locked).values_list("product_id", "sequence"))
        missing = [
            _new_voucher(locked, product, sequence)
            for product, quantity in parts
            for sequence in range(1, quantity + 1)
            if (product.pk, sequence) not in existing
        ]
        if missing:
            Voucher.objects.bulk_create(missing)
            logger.info("orders.vouchers_issued", extra={"order": locked.order_no, "count": len(missing)})
        return list(Voucher.objects.filter(order=locked).order_by("product_id", "sequence"))


# --- redeeming -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    outcome: str
    message: str = ""


def _already_redeemed_message(voucher: Voucher) -> str:
    who = voucher.redeemed_by.get_username() if voucher.redeemed_by else _("未知")
    when = date_format(timezone.localtime(voucher.redeemed_at), "Y-m-d H:i:s")
    if voucher.redeemed_store:
        return _("该券已于 %(when)s 由 %(who)s 在“%(store)s”核销，不能重复核销") % {
            "when": when,
            "who": who,
            "store": voucher.redeemed_store,
        }
    return _("该券已于 %(when)s 由 %(who)s 核销，不能重复核销") % {"when": when, "who": who}


def _decide(voucher: Voucher, dynamic_code: str, now: datetime) -> _Decision:
    if voucher.voided_at is not None or voucher.order.status == OrderStatus.REFUNDED:
        return _Decision(RedemptionOutcome.NOT_REDEEMABLE, _("该券所属订单已退款或券已作废，不能核销"))
    if voucher.redeemed_at is not None:
        return _Decision(RedemptionOutcome.ALREADY_REDEEMED, _already_redeemed_message(voucher))
    if voucher.requires_dynamic_code and not _dynamic_code_matches(voucher, dynamic_code, now):
        if not (dynamic_code or "").strip():
            return _Decision(RedemptionOutcome.BAD_DYNAMIC_CODE, _("该券需要顾客出示页面上的 6 位动态码"))
        return _Decision(RedemptionOutcome.BAD_DYNAMIC_CODE, _("动态码错误或已过期，请让顾客刷新页面后重新出示"))
    return _Decision(RedemptionOutcome.REDEEMED)


def redeem_voucher(
    *,
    code: str,
    dynamic_code: str = "",
    actor,
    store_label: str = "",
    ip: str | None = None,
    now: datetime | None = None,
    request=None,
) -> Voucher:
    """Redeem the voucher ``code`` names, once. Raises VoucherRefused (logged) for an unknown,
    refunded or already redeemed voucher or a wrong dynamic code; PermissionDenied without
    ``orders.redeem_voucher``; ValidationError for an empty code."""
    if actor is None or not actor.has_perm("orders.redeem_voucher"):
        raise PermissionDenied("redeeming a voucher needs orders.redeem_voucher")
    normalised = normalise_code(code)
    store_label = (store_label or "").strip()
    if not normalised:
        raise ValidationError({"code": [_("请输入或扫描券码")]})
    if len(store_label) > STORE_LABEL_MAX:
        raise ValidationError({"store_label": [_("门店名称不能超过 %(max)s 个字") % {"max": STORE_LABEL_MAX}]})
    now = now or timezone.now()
    log = {"actor": actor, "actor_name": actor.get_username(), "store_label": store_label, "ip_address": ip}

    try:
        with transaction.atomic():
            voucher = (
                Voucher.objects.select_for_update(of=("self",))
                .select_related("order", "product", "redeemed_by")
                .filter(code_index=_code_index(normalised))
                .first()
            )
            if voucher is None:
                VoucherRedemption.objects.create(outcome=RedemptionOutcome.UNKNOWN_CODE, **log)
                decision = _Decision(RedemptionOutcome.UNKNOWN_CODE, _("券码无效，请核对后重试"))
            else:
                decision = _decide(voucher, dynamic_code, now)
                VoucherRedemption.objects.create(voucher=voucher, outcome=decision.outcome, **log)
                if decision.outcome == RedemptionOutcome.REDEEMED:
                    voucher.redeemed_at = now
                    voucher.redeemed_by = actor
                    voucher.redeemed_store = store_label
                    voucher.save(update_fields=["redeemed_at", "redeemed_by", "redeemed_store"])
                    record_audit(
                        actor=actor,
                        action="orders.voucher_redeemed",
                        target=voucher,
                        changes={"order": voucher.order.order_no, "store": store_label},
                        request=request,
                    )
    except IntegrityError:
        # The partial unique constraint caught a second acceptance the lock should have stopped.
        voucher = Voucher.objects.select_related("redeemed_by").get(code_index=_code_index(normalised))
        raise VoucherRefused(
            _already_redeemed_message(voucher), outcome=RedemptionOutcome.ALREADY_REDEEMED, voucher=voucher
        ) from None

    logger.info(
        "orders.voucher_redemption",
        extra={"outcome": decision.outcome, "voucher_id": getattr(voucher, "pk", None), "store": store_label},
    )
    if decision.outcome != RedemptionOutcome.REDEEMED:
        raise VoucherRefused(decision.message, outcome=decision.outcome, voucher=voucher)
    return voucher


# --- buyer pages ---------------------------------------------------------------------------


def vouchers_for_buyer(*, order: Order, now: datetime | None = None) -> list[dict]:
    """What the buyer's delivery page shows per voucher: code, QR, state, dynamic code.
    Decrypts: call only for a browser that has access to ``order``."""
    items = []
    for voucher in Voucher.objects.filter(order=order).select_related("product").order_by("product_id", "sequence"):
        item = {
            "voucher": voucher,
            "product": voucher.product.name,
            "sequence": voucher.sequence,
            "code": voucher_code(voucher),
            "is_redeemed": voucher.is_redeemed,
            "redeemed_at": voucher.redeemed_at,
            "is_voided": voucher.voided_at is not None,
            "requires_dynamic_code": voucher.requires_dynamic_code,
            "dynamic_code": "",
            "seconds_left": 0,
        }
        if voucher.requires_dynamic_code and not voucher.is_redeemed:
            item["dynamic_code"], item["seconds_left"] = current_dynamic_code(voucher=voucher, now=now)
        items.append(item)
    return items
