"""Upstream suppliers (货源): sending a top-up with failover, the circuit breaker, the price and
balance sync, supplier alerts, and the merchant's edits of suppliers and channels.

The network rule shapes everything here: no transaction is ever open while a supplier is being
called. Each attempt is a row committed *before* the call (so a crash leaves evidence, never a
silent top-up) and its outcome is recorded in a new transaction after. An answer we did not get
(timeout, 5xx, "processing") is not a failure: the order is queried before any other channel is
tried, so a buyer is never topped up twice.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import (
    Product,
    ProductType,
    RechargeAttemptStatus,
    Supplier,
    SupplierAdapter,
    SupplierAlert,
    SupplierAlertKind,
    SupplierChannel,
    SupplierPriceChange,
    SupplierRechargeAttempt,
)
from catalog.suppliers import (
    ADAPTERS,
    OrderResult,
    OrderStatus,
    SupplierError,
    Transport,
    client_for,
)
from kamen import crypto
from kamen.audit import diff_fields, record_audit
from kamen.money import FEN, InvalidAmount, parse_amount
from kamen.parsing import parse_integer

from .upstream import store_upstream_card_keys

__all__ = [
    "CHANNEL_FIELDS",
    "SUPPLIER_FIELDS",
    "SupplierSyncReport",
    "TopUpOutcome",
    "TopUpStatus",
    "create_supplier",
    "delete_supplier_channel",
    "save_supplier_channel",
    "send_top_up",
    "sync_all_suppliers",
    "sync_supplier",
    "update_supplier",
    "validate_channel_fields",
    "validate_supplier_fields",
]

logger = logging.getLogger(__name__)

SECRET_ASSOCIATED_DATA = b"supplier-secret"
SUPPLIER_FIELDS = ("name", "adapter", "base_url", "app_id", "is_active", "low_balance_threshold")
CHANNEL_FIELDS = ("product", "supplier", "supplier_sku", "priority", "cost", "cost_ceiling", "is_active")
MAX_REFERENCE_LENGTH = 64
# Sent in an HTTP header: ASCII only.
APP_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")


# --- the merchant's edits -----------------------------------------------------------------------
def _require_permission(actor, permission: str) -> None:
    """None is the system (demo loader, scheduled jobs); a person needs the permission."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(_("你没有执行此操作的权限（%(permission)s）") % {"permission": permission})


def _money(raw, *, name: str, label: str, optional: bool = False, allow_zero: bool = True) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if optional:
            return None
        raise ValidationError({name: [_("请填写%(label)s") % {"label": label}]})
    try:
        return parse_amount(raw, allow_zero=allow_zero)
    except InvalidAmount:
        raise ValidationError(
            {name: [_("%(label)s必须是不小于 0 的金额，最多两位小数（收到“%(raw)s”）") % {"label": label, "raw": raw}]}
        ) from None


def _text(raw, *, name: str, label: str, max_length: int) -> str:
    value = str(raw or "").strip()
    if not value:
        raise ValidationError({name: [_("请填写%(label)s") % {"label": label}]})
    if len(value) > max_length:
        raise ValidationError({name: [_("%(label)s最多 %(count)s 个字符") % {"label": label, "count": max_length}]})
    return value


def _clean_supplier(values: dict) -> dict:
    adapter = str(values.get("adapter") or "")
    if adapter not in ADAPTERS or adapter not in SupplierAdapter.values:
        raise ValidationError(
            {"adapter": [_("未知的对接类型“%(adapter)s”，可选：%(known)s") % {"adapter": adapter, "known": "、".join(sorted(ADAPTERS))}]}
        )
    base_url = _text(values.get("base_url"), name="base_url", label=_("接口地址"), max_length=300)
    # Deliberately lenient on host names: in-cluster names ("sandbox", "web:8000") have no TLD.
    # A path on this site ("/sandbox/supplier/") is kept as a path and resolved against SITE_URL
    # when called, so no stored address points at one host.
    parts = urlsplit(base_url)
    is_site_path = base_url.startswith("/") and not base_url.startswith("//")
    is_full_url = parts.scheme in ("http", "https") and bool(parts.hostname)
    if not (is_site_path or is_full_url) or any(char.isspace() for char in base_url):
        raise ValidationError(
            {"base_url": [_("接口地址必须是 http:// 或 https:// 开头的网址，或本站的路径（以 / 开头）")]}
        )
    app_id = _text(values.get("app_id"), name="app_id", label=_("App ID"), max_length=80)
    if not APP_ID_PATTERN.fullmatch(app_id):
        raise ValidationError({"app_id": [_("App ID 只能包含英文字母、数字和 - _ . : 符号")]})
    return {
        "name": _text(values.get("name"), name="name", label=_("名称"), max_length=80),
        "adapter": adapter,
        "base_url": base_url,
        "app_id": app_id,
        "is_active": bool(values.get("is_active", True)),
        "low_balance_threshold": _money(
            values.get("low_balance_threshold"), name="low_balance_threshold", label=_("余额预警值"), optional=True
        ),
    }


def validate_supplier_fields(*, values: dict, app_secret: str | None = None, is_new: bool) -> dict:
    """The checks create/update run, for forms that want errors beside their fields first."""
    cleaned = _clean_supplier(values)
    if is_new or app_secret:
        _check_secret(app_secret)
    return cleaned


def _check_secret(secret: str | None) -> str:
    secret = (secret or "").strip()
    if len(secret) < 8 or len(secret) > 200:
        raise ValidationError({"app_secret": [_("密钥长度应为 8 到 200 个字符")]})
    return secret


def _set_secret(supplier: Supplier, secret: str) -> None:
    secret = _check_secret(secret)
    supplier.app_secret_key_id, supplier.app_secret_ciphertext = crypto.encrypt(secret, associated_data=SECRET_ASSOCIATED_DATA)


def _supplier_values(supplier: Supplier) -> dict:
    return {name: getattr(supplier, name) for name in SUPPLIER_FIELDS}


@transaction.atomic
def create_supplier(*, actor, app_secret: str, request=None, **values) -> Supplier:
    """A new supplier; the secret is encrypted here and never stored or logged in clear."""
    _require_permission(actor, "catalog.add_supplier")
    cleaned = _clean_supplier(values)
    if Supplier.objects.filter(name=cleaned["name"]).exists():
        raise ValidationError({"name": [_("已有同名货源“%(name)s”") % {"name": cleaned["name"]}]})
    supplier = Supplier(**cleaned)
    _set_secret(supplier, app_secret)
    supplier.save()
    record_audit(
        actor=actor,
        action="catalog.supplier.create",
        target=supplier,
        changes=diff_fields(before={}, after=cleaned) | {"app_secret": ["***", "***"]},
        request=request,
    )
    return supplier


@transaction.atomic
def update_supplier(*, supplier: Supplier, actor, app_secret: str | None = None, request=None, **changes) -> Supplier:
    """Apply changes; an empty ``app_secret`` keeps the stored one (the form never shows it)."""
    _require_permission(actor, "catalog.change_supplier")
    locked = Supplier.objects.select_for_update().get(pk=supplier.pk)
    before = _supplier_values(locked)
    unknown = set(changes) - set(SUPPLIER_FIELDS)
    if unknown:
        raise ValidationError(_("不能修改这些字段：%(fields)s") % {"fields": ", ".join(sorted(unknown))})
    cleaned = _clean_supplier(before | changes)
    if Supplier.objects.filter(name=cleaned["name"]).exclude(pk=locked.pk).exists():
        raise ValidationError({"name": [_("已有同名货源“%(name)s”") % {"name": cleaned["name"]}]})
    for name, value in cleaned.items():
        setattr(locked, name, value)
    audit_changes = diff_fields(before=before, after=cleaned)
    if app_secret:
        _set_secret(locked, app_secret)
        audit_changes["app_secret"] = ["***", "***"]
    locked.save()
    if audit_changes:
        record_audit(actor=actor, action="catalog.supplier.update", target=locked, changes=audit_changes, request=request)
    for name in SUPPLIER_FIELDS + ("app_secret_ciphertext", "app_secret_key_id"):
        setattr(supplier, name, getattr(locked, name))
    return supplier


def _clean_channel(values: dict) -> dict:
    product, supplier = values.get("product"), values.get("supplier")
    if not isinstance(product, Product):
        raise ValidationError({"product": [_("请选择商品")]})
    if not isinstance(supplier, Supplier):
        raise ValidationError({"supplier": [_("请选择货源")]})
    try:
        priority = parse_integer(values.get("priority", 10))
    except (TypeError, ValueError):
        priority = -1
    if priority < 0:
        raise ValidationError({"priority": [_("优先级必须是不小于 0 的整数")]})
    return {
        "product": product,
        "supplier": supplier,
        "supplier_sku": _text(values.get("supplier_sku"), name="supplier_sku", label=_("货源商品编号"), max_length=80),
        "priority": priority,
        "cost": _money(values.get("cost"), name="cost", label=_("进货价")),
        "cost_ceiling": _money(values.get("cost_ceiling"), name="cost_ceiling", label=_("成本上限"), optional=True),
        "is_active": bool(values.get("is_active", True)),
    }


def validate_channel_fields(*, values: dict) -> dict:
    """The checks save_supplier_channel runs, for the console's inline forms."""
    return _clean_channel(values)


@transaction.atomic
def save_supplier_channel(*, actor, channel: SupplierChannel | None = None, request=None, **values) -> SupplierChannel:
    """Create (``channel=None``) or change a channel; cost and ceiling changes are audited."""
    if channel is None:
        _require_permission(actor, "catalog.add_supplierchannel")
        before, locked = {}, SupplierChannel()
    else:
        _require_permission(actor, "catalog.change_supplierchannel")
        locked = SupplierChannel.objects.select_for_update().get(pk=channel.pk)
        before = {name: getattr(locked, name) for name in CHANNEL_FIELDS}
    cleaned = _clean_channel(before | values)
    duplicate = SupplierChannel.objects.filter(
        product=cleaned["product"], supplier=cleaned["supplier"], supplier_sku=cleaned["supplier_sku"]
    ).exclude(pk=locked.pk)
    if duplicate.exists():
        raise ValidationError({"supplier_sku": [_("该商品已有这个货源商品编号的渠道")]})
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.save()
    changes = diff_fields(before=before, after=cleaned)
    if changes:
        action = "catalog.supplier_channel.create" if channel is None else "catalog.supplier_channel.update"
        record_audit(actor=actor, action=action, target=locked, changes=changes, request=request)
    return locked


@transaction.atomic
def delete_supplier_channel(*, channel: SupplierChannel, actor, request=None) -> None:
    _require_permission(actor, "catalog.delete_supplierchannel")
    if channel.attempts.exists():
        raise ValidationError(_("该渠道已有直充记录，不能删除；请改为停用"))
    before = {name: getattr(channel, name) for name in CHANNEL_FIELDS}
    record_audit(
        actor=actor, action="catalog.supplier_channel.delete", target=channel,
        changes=diff_fields(before=before, after={}), request=request,
    )
    channel.delete()


# --- alerts --------------------------------------------------------------------------------------
def _open_alert(*, kind: str, message: str, supplier: Supplier | None = None, product: Product | None = None) -> SupplierAlert | None:
    """Open the alert unless one is already open; returns it only when newly opened.
    Call inside a transaction; the partial unique constraints are the backstop."""
    if SupplierAlert.objects.filter(kind=kind, supplier=supplier, product=product, resolved_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            return SupplierAlert.objects.create(kind=kind, supplier=supplier, product=product, message=message[:300])
    except IntegrityError:
        return None


def _resolve_alerts(*, kind: str, now: datetime, supplier: Supplier | None = None, product: Product | None = None) -> int:
    return SupplierAlert.objects.filter(kind=kind, supplier=supplier, product=product, resolved_at__isnull=True).update(
        resolved_at=now
    )


def _merchant_recipients() -> list[str]:
    from django.contrib.auth import get_user_model

    from kamen.roles import OPERATOR, OWNER

    return sorted(
        set(settings.MERCHANT_ALERT_EMAILS)
        | set(
            get_user_model()
            .objects.filter(is_active=True, is_staff=True, groups__name__in=[OWNER, OPERATOR])
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )


def _notify_merchant(alerts: list[SupplierAlert]) -> None:
    """Email each newly opened alert once. Called outside any transaction; a mail server that is
    down is logged, never allowed to undo the alert (it stays visible in the console)."""
    from django.core.mail import send_mail

    alerts = [alert for alert in alerts if alert is not None]
    if not alerts:
        return
    recipients = _merchant_recipients()
    if not recipients:
        return
    for alert in alerts:
        try:
            send_mail(
                subject=f"[Kamen] {alert.get_kind_display()}：{alert.message[:60]}",
                message=alert.message + "\n\n" + _("请登录商户后台查看货源预警。"),
                from_email=None,
                recipient_list=recipients,
            )
        except Exception:
            logger.exception("supplier_alert.email_failed alert_id=%s", alert.pk)
            continue
        SupplierAlert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())


# --- sending a top-up ----------------------------------------------------------------------------
class TopUpStatus(StrEnum):
    SUCCEEDED = "succeeded"
    # Every usable channel refused (or none was usable): nothing was topped up, safe to refund.
    FAILED = "failed"
    # A supplier has not told us yet: call send_top_up again later with the same reference.
    # Never refund a pending top-up: it may still arrive.
    PENDING = "pending"


@dataclass(frozen=True)
class TopUpOutcome:
    """What happened to a top-up, for the fulfilment task.

    ``channel``/``supplier``/``supplier_order_no``/``cost`` name the channel that succeeded
    (or that is still pending); ``message`` says why, in words a merchant understands.
    """

    status: TopUpStatus
    reference: str
    channel: SupplierChannel | None = None
    supplier: Supplier | None = None
    supplier_order_no: str = ""
    cost: Decimal | None = None
    message: str = ""
    attempts: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == TopUpStatus.SUCCEEDED

    @property
    def is_final(self) -> bool:
        return self.status != TopUpStatus.PENDING


_RESULT_TO_ATTEMPT = {
    OrderStatus.SUCCEEDED: RechargeAttemptStatus.SUCCEEDED,
    OrderStatus.FAILED: RechargeAttemptStatus.FAILED,
    OrderStatus.OUT_OF_STOCK: RechargeAttemptStatus.OUT_OF_STOCK,
    OrderStatus.PENDING: RechargeAttemptStatus.PENDING,
}
_UNKNOWN = (RechargeAttemptStatus.SENDING, RechargeAttemptStatus.PENDING)


def _outcome(attempt: SupplierRechargeAttempt, status: TopUpStatus, message: str = "") -> TopUpOutcome:
    return TopUpOutcome(
        status=status,
        reference=attempt.reference,
        channel=attempt.channel,
        supplier=attempt.supplier,
        supplier_order_no=attempt.supplier_order_no,
        cost=attempt.cost,
        message=message or attempt.message,
    )


def _ceiling(channel: SupplierChannel, product: Product) -> Decimal:
    if channel.cost_ceiling is not None:
        return channel.cost_ceiling
    if product.supplier_cost_ceiling is not None:
        return product.supplier_cost_ceiling
    return product.retail_price


def _skip_reason(
    channel: SupplierChannel, product: Product, now: datetime, *, ask_if_out_of_stock: bool = False
) -> str:
    if not channel.is_active or not channel.supplier.is_active:
        return _("渠道已停用")
    if not channel.is_in_stock and not ask_if_out_of_stock:
        return _("货源缺货")
    ceiling = _ceiling(channel, product)
    if channel.cost > ceiling:
        return _("进货价 %(cost)s 高于上限 %(ceiling)s") % {"cost": channel.cost, "ceiling": ceiling}
    if channel.circuit_open_until is not None and channel.circuit_open_until > now:
        return _("渠道熔断中，%(until)s 后重试") % {"until": timezone.localtime(channel.circuit_open_until).strftime("%H:%M:%S")}
    return ""


def _claim_half_open_trial(channel: SupplierChannel, now: datetime) -> bool:
    """A cooled-down breaker lets exactly one call through: the worker whose conditional update
    pushes ``circuit_open_until`` forward wins; the others keep skipping the channel."""
    if channel.circuit_open_until is None:
        return True
    won = SupplierChannel.objects.filter(pk=channel.pk, circuit_open_until=channel.circuit_open_until).update(
        circuit_open_until=now + timedelta(seconds=settings.SUPPLIER_CIRCUIT_COOLDOWN_SECONDS)
    )
    return won == 1


def _claim_attempt(
    *, reference: str, channel: SupplierChannel, product: Product, target: str, quantity: int, earlier: int = 0
) -> SupplierRechargeAttempt | None:
    """Commit the attempt row before anything is sent. None: another worker already holds it.
    ``earlier``: refused tries of this channel for this reference; a new try is a new order
    at the supplier (its number gets the try's count), the refused one stays what it was."""
    out_order_no = f"{reference}-C{channel.pk}" + (f"-{earlier + 1}" if earlier else "")
    try:
        with transaction.atomic():
            return SupplierRechargeAttempt.objects.create(
                reference=reference,
                channel=channel,
                supplier=channel.supplier,
                product=product,
                out_order_no=out_order_no,
                target=target,
                quantity=quantity,
            )
    except IntegrityError:
        return None


def _record_result(*, attempt: SupplierRechargeAttempt, result: OrderResult, now: datetime) -> tuple[SupplierRechargeAttempt, list]:
    """Record one answer in its own transaction, and move the channel's breaker with it."""
    opened = []
    with transaction.atomic():
        locked = (
            SupplierRechargeAttempt.objects.select_for_update(of=("self",))
            .select_related("channel", "supplier", "product")
            .get(pk=attempt.pk)
        )
        if locked.status not in _UNKNOWN:
            return locked, opened  # someone else recorded a final answer first
        locked.status = _RESULT_TO_ATTEMPT[result.status]
        locked.supplier_order_no = result.supplier_order_no[:80] or locked.supplier_order_no
        locked.message = result.message[:300]
        if result.status == OrderStatus.SUCCEEDED:
            locked.cost = result.cost if result.cost is not None else locked.channel.cost * locked.quantity
        if result.is_final:
            locked.finished_at = timezone.now()
        locked.save()
        if result.status == OrderStatus.SUCCEEDED and locked.product.product_type == ProductType.CARD_KEY:
            # Keys bought from an upstream: in the vault, sold to the order, with the success.
            store_upstream_card_keys(attempt=locked, result=result)
        channel = SupplierChannel.objects.select_for_update().get(pk=locked.channel_id)
        if result.status == OrderStatus.SUCCEEDED:
            # Our copy of the prepaid balance follows each charge until the next sync corrects it.
            Supplier.objects.filter(pk=locked.supplier_id, balance__isnull=False).update(balance=F("balance") - locked.cost)
            channel.consecutive_failures, channel.circuit_open_until, channel.last_success_at = 0, None, now
            channel.is_in_stock = True  # it just sold
            channel.save(
                update_fields=["consecutive_failures", "circuit_open_until", "last_success_at", "is_in_stock"]
            )
            _resolve_alerts(kind=SupplierAlertKind.CHANNEL_CIRCUIT_OPEN, supplier=channel.supplier, product=channel.product, now=now)
        elif result.status == OrderStatus.OUT_OF_STOCK:
            # Not the channel's fault: skip it until a price sync finds stock again.
            channel.is_in_stock, channel.last_error = False, result.message[:300]
            channel.save(update_fields=["is_in_stock", "last_error"])
        elif result.status == OrderStatus.FAILED:
            SupplierChannel.objects.filter(pk=channel.pk).update(
                consecutive_failures=F("consecutive_failures") + 1, last_failure_at=now, last_error=result.message[:300]
            )
            channel.refresh_from_db()
            if channel.consecutive_failures >= settings.SUPPLIER_CIRCUIT_FAILURES:
                channel.circuit_open_until = now + timedelta(seconds=settings.SUPPLIER_CIRCUIT_COOLDOWN_SECONDS)
                channel.save(update_fields=["circuit_open_until"])
                opened.append(
                    _open_alert(
                        kind=SupplierAlertKind.CHANNEL_CIRCUIT_OPEN,
                        supplier=channel.supplier,
                        product=channel.product,
                        message=_("渠道“%(channel)s”连续失败 %(count)s 次，暂停使用至 %(until)s。最近错误：%(error)s")
                        % {
                            "channel": channel,
                            "count": channel.consecutive_failures,
                            "until": timezone.localtime(channel.circuit_open_until).strftime("%Y-%m-%d %H:%M:%S"),
                            "error": result.message[:100],
                        },
                    )
                )
    return locked, opened


def _ask(call, *, what: str) -> OrderResult:
    """Any surprise from an adapter while an order may be in flight is 'unknown', not 'failed'."""
    try:
        return call()
    except Exception as error:
        logger.exception("supplier.%s_raised", what)
        return OrderResult(OrderStatus.PENDING, message=f"{what}: {error.__class__.__name__}")


def _in_flight_window() -> timedelta:
    """How long a request we sent may still be on its way to (or queued at) the supplier."""
    return timedelta(seconds=settings.SUPPLIER_HTTP_TIMEOUT * 2 + 5)


def _query(client, attempt: SupplierRechargeAttempt) -> OrderResult:
    """Query, but a "no such order" for an order sent moments ago is not yet an answer: the
    request may still arrive, and going elsewhere now could top the buyer up twice."""
    result = _ask(partial(client.query_order, out_order_no=attempt.out_order_no), what="query")
    if result.is_not_found and attempt.created_at > timezone.now() - _in_flight_window():
        return OrderResult(OrderStatus.PENDING, message=_("货源暂未查到该订单，稍后再查"))
    return _with_goods(result, attempt)


def _with_goods(result: OrderResult, attempt: SupplierRechargeAttempt) -> OrderResult:
    """A card-key order is done only with its keys in hand: a success without them (the answer
    to a placement, which never carries them) is not an answer yet, so the order is queried."""
    if (
        result.status == OrderStatus.SUCCEEDED
        and attempt.product.product_type == ProductType.CARD_KEY
        and len(result.goods) < attempt.quantity
    ):
        return OrderResult(
            OrderStatus.PENDING,
            supplier_order_no=result.supplier_order_no,
            message=_("货源已完成，卡密待取回（%(got)s/%(want)s）")
            % {"got": len(result.goods), "want": attempt.quantity},
        )
    return result


def _settle_unknown(attempt: SupplierRechargeAttempt, *, now: datetime, transport: Transport | None) -> tuple[SupplierRechargeAttempt, list]:
    try:
        client = client_for(attempt.supplier, transport=transport)
    except (SupplierError, crypto.DecryptionError) as error:
        # Cannot even ask: the attempt stays unknown and the top-up stays pending.
        logger.error("supplier.query_impossible attempt=%s error=%s", attempt.pk, error)
        return attempt, []
    result = _query(client, attempt)
    if result.status == OrderStatus.PENDING:
        SupplierRechargeAttempt.objects.filter(pk=attempt.pk, status__in=_UNKNOWN).update(
            status=RechargeAttemptStatus.PENDING, message=result.message[:300]
        )
        attempt.refresh_from_db()
        return attempt, []
    return _record_result(attempt=attempt, result=result, now=now)


def _validate_top_up(*, product: Product, reference: str, target: str, quantity: int) -> None:
    if not isinstance(product, Product) or product.pk is None:
        raise ValidationError({"product": [_("请指定商品")]})
    if not reference or len(reference) > MAX_REFERENCE_LENGTH:
        raise ValidationError({"reference": [_("业务单号不能为空，且最多 %(count)s 个字符") % {"count": MAX_REFERENCE_LENGTH}]})
    if product.product_type == ProductType.CARD_KEY:
        # Card keys bought from an upstream: nothing to top up, no account.
        if target or not product.is_sourced_upstream:
            raise ValidationError({"product": [_("只有上游对接的卡密商品可以向货源采购")]})
    elif not target or len(target) > 120:
        raise ValidationError({"target": [_("充值账号不能为空，且最多 120 个字符")]})
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise ValidationError({"quantity": [_("数量必须是不小于 1 的整数")]})


def send_top_up(
    *,
    product: Product,
    reference: str,
    target: str,
    quantity: int,
    now: datetime | None = None,
    transport: Transport | None = None,
    retry_refused: bool = False,
) -> TopUpOutcome:
    """Top up ``target`` through the product's channels, best first, with failover — or, for a
    card-key product sourced upstream (``target`` empty), buy its keys there: they are stored
    in our vault as sold to ``reference`` with the success (``store_upstream_card_keys``).

    Idempotent by ``reference`` (the order number): a success is returned, never re-sent; an
    answer still owed by a supplier is asked for before anything else is tried; channels that
    already refused this reference are not asked again, unless ``retry_refused`` (a back-order
    tried again: each channel once more, under a new order number there). Must not be called
    inside a transaction: it commits each attempt before calling the supplier.
    """
    _validate_top_up(product=product, reference=reference, target=target, quantity=quantity)
    now = now or timezone.now()
    attempts = list(
        SupplierRechargeAttempt.objects.filter(reference=reference)
        .select_related("channel", "supplier", "channel__product", "product")
        .order_by("id")
    )
    if any(attempt.product_id != product.pk for attempt in attempts):
        raise ValidationError({"reference": [_("业务单号“%(reference)s”已用于其他商品") % {"reference": reference}]})
    for attempt in attempts:
        if attempt.status == RechargeAttemptStatus.SUCCEEDED:
            return _outcome(attempt, TopUpStatus.SUCCEEDED)
    alerts: list = []
    in_flight_window = _in_flight_window()
    for attempt in attempts:
        if attempt.status not in _UNKNOWN:
            continue
        if attempt.status == RechargeAttemptStatus.SENDING and attempt.created_at > timezone.now() - in_flight_window:
            return _outcome(attempt, TopUpStatus.PENDING, _("另一个任务正在向货源下单，请稍后再查"))
        attempt, opened = _settle_unknown(attempt, now=now, transport=transport)
        alerts += opened
        if attempt.status == RechargeAttemptStatus.SUCCEEDED:
            _notify_merchant(alerts)
            return _outcome(attempt, TopUpStatus.SUCCEEDED)
        if attempt.status in _UNKNOWN:
            return _outcome(attempt, TopUpStatus.PENDING, _("货源尚未返回结果，稍后将再次查询"))

    refused = {}
    for attempt in attempts:
        refused[attempt.channel_id] = refused.get(attempt.channel_id, 0) + 1
    tried = set() if retry_refused else set(refused)
    notes = [f"{attempt.supplier}: {attempt.get_status_display()} {attempt.message}".strip() for attempt in attempts]
    if retry_refused:
        notes = []
    channels = SupplierChannel.objects.filter(product=product).select_related("supplier", "product").order_by("priority", "id")
    try:
        for channel in channels:
            if channel.pk in tried:
                continue
            # A back-order tried again asks even a channel last seen out of stock: has it stock now?
            reason = _skip_reason(channel, product, now, ask_if_out_of_stock=retry_refused)
            if reason:
                notes.append(f"{channel.supplier}: {reason}")
                continue
            try:
                client = client_for(channel.supplier, transport=transport)
            except (SupplierError, crypto.DecryptionError) as error:
                notes.append(f"{channel.supplier}: {error}")
                continue
            if not _claim_half_open_trial(channel, now):
                notes.append(f"{channel.supplier}: " + _("渠道熔断恢复试探中"))
                continue
            attempt = _claim_attempt(
                reference=reference,
                channel=channel,
                product=product,
                target=target,
                quantity=quantity,
                earlier=refused.get(channel.pk, 0),
            )
            if attempt is None:
                return TopUpOutcome(TopUpStatus.PENDING, reference, channel, channel.supplier, message=_("另一个任务正在向货源下单，请稍后再查"))
            logger.info("supplier.top_up_sent reference=%s channel=%s out_order_no=%s", reference, channel.pk, attempt.out_order_no)
            result = _ask(
                partial(client.place_order, sku=channel.supplier_sku, target=target, quantity=quantity, out_order_no=attempt.out_order_no),
                what="place_order",
            )
            result = _with_goods(result, attempt)
            if result.status == OrderStatus.PENDING:
                # Unknown is not failure: ask before going anywhere else.
                result = _query(client, attempt)
            attempt, opened = _record_result(attempt=attempt, result=result, now=now)
            alerts += opened
            logger.info("supplier.top_up_result reference=%s channel=%s status=%s", reference, channel.pk, attempt.status)
            if attempt.status == RechargeAttemptStatus.SUCCEEDED:
                return _outcome(attempt, TopUpStatus.SUCCEEDED)
            if attempt.status in _UNKNOWN:
                return _outcome(attempt, TopUpStatus.PENDING, _("货源尚未返回结果，稍后将再次查询"))
            notes.append(f"{channel.supplier}: {attempt.get_status_display()} {attempt.message}".strip())
    finally:
        _notify_merchant(alerts)
    message = "；".join(notes) if notes else _("该商品没有配置货源渠道")
    return TopUpOutcome(TopUpStatus.FAILED, reference, message=_("没有可用的货源渠道完成充值：%(reasons)s") % {"reasons": message}, attempts=notes)


# --- price and balance sync ----------------------------------------------------------------------
@dataclass
class SupplierSyncReport:
    supplier: Supplier
    balance: Decimal | None = None
    price_changes: int = 0
    taken_off_shelf: list[Product] = field(default_factory=list)
    alerts: list[SupplierAlert] = field(default_factory=list)
    error: str = ""


def _check_cost_against_price(*, product: Product, now: datetime) -> tuple[bool, SupplierAlert | None]:
    """Off the shelf (audited, as the system) while the cheapest usable cost reaches the price."""
    from catalog.services.products import take_off_shelf

    cheapest = (
        SupplierChannel.objects.filter(product=product, is_active=True, is_in_stock=True, supplier__is_active=True)
        .aggregate(cheapest=Min("cost"))["cheapest"]
    )
    product.refresh_from_db()
    cheapest = None if cheapest is None else Decimal(cheapest).quantize(FEN)
    if cheapest is None or cheapest < product.retail_price:
        _resolve_alerts(kind=SupplierAlertKind.COST_REACHED_PRICE, product=product, now=now)
        return False, None
    taken = False
    with transaction.atomic():
        alert = _open_alert(
            kind=SupplierAlertKind.COST_REACHED_PRICE,
            product=product,
            message=_("商品“%(product)s”的最低进货价 %(cost)s 已达到售价 %(price)s，已自动下架。请调整售价或更换货源后重新上架。")
            % {"product": product.name, "cost": cheapest, "price": product.retail_price},
        )
        if product.is_on_shelf:
            reason = _("货源成本 %(cost)s 已达到售价 %(price)s，系统自动下架") % {"cost": cheapest, "price": product.retail_price}
            try:
                with transaction.atomic():
                    take_off_shelf(product=product, actor=None, reason=reason)
            except ValidationError as error:
                # Some unrelated field no longer validates; selling at a loss is worse, so
                # take it off directly, audited the same way.
                logger.warning("supplier.off_shelf_forced product=%s error=%s", product.pk, error.messages)
                Product.objects.filter(pk=product.pk).update(is_on_shelf=False, off_shelf_reason=reason[:200])
                record_audit(
                    actor=None,
                    action="catalog.product.shelf_change",
                    target=product,
                    changes={"is_on_shelf": [True, False], "off_shelf_reason": [product.off_shelf_reason, reason[:200]]},
                )
            taken = True
    return taken, alert


def sync_supplier(*, supplier: Supplier, now: datetime | None = None, transport: Transport | None = None) -> SupplierSyncReport:
    """Fetch balance and prices (outside any transaction), then record them in one."""
    now = now or timezone.now()
    report = SupplierSyncReport(supplier=supplier)
    channels = list(SupplierChannel.objects.filter(supplier=supplier).select_related("product"))
    try:
        client = client_for(supplier, transport=transport)
        balance = client.fetch_balance()
        quotes = client.fetch_prices(skus=sorted({channel.supplier_sku for channel in channels})) if channels else {}
    except (SupplierError, crypto.DecryptionError) as error:
        report.error = str(error)[:300]
        logger.warning("supplier.sync_failed supplier=%s error=%s", supplier.pk, report.error)
        with transaction.atomic():
            Supplier.objects.filter(pk=supplier.pk).update(last_sync_error=report.error)
            alert = _open_alert(
                kind=SupplierAlertKind.SYNC_FAILED,
                supplier=supplier,
                message=_("货源“%(supplier)s”价格/余额同步失败：%(error)s") % {"supplier": supplier.name, "error": report.error},
            )
        report.alerts = [alert] if alert else []
        _notify_merchant(report.alerts)
        return report

    opened = []
    with transaction.atomic():
        locked = Supplier.objects.select_for_update().get(pk=supplier.pk)
        locked.balance, locked.balance_synced_at, locked.prices_synced_at, locked.last_sync_error = balance, now, now, ""
        locked.save(update_fields=["balance", "balance_synced_at", "prices_synced_at", "last_sync_error"])
        report.balance = balance
        _resolve_alerts(kind=SupplierAlertKind.SYNC_FAILED, supplier=locked, now=now)
        if locked.low_balance_threshold is not None and balance < locked.low_balance_threshold:
            opened.append(
                _open_alert(
                    kind=SupplierAlertKind.LOW_BALANCE,
                    supplier=locked,
                    message=_("货源“%(supplier)s”余额 %(balance)s 低于预警值 %(threshold)s，请及时充值。")
                    % {"supplier": locked.name, "balance": balance, "threshold": locked.low_balance_threshold},
                )
            )
        else:
            _resolve_alerts(kind=SupplierAlertKind.LOW_BALANCE, supplier=locked, now=now)
        for channel in SupplierChannel.objects.select_for_update().filter(supplier=locked).order_by("pk"):
            quote = quotes.get(channel.supplier_sku)
            if quote is None:
                channel.is_in_stock, channel.last_error = False, _("货源不再提供该商品编号")[:300]
                channel.save(update_fields=["is_in_stock", "last_error"])
                continue
            if quote.price != channel.cost:
                SupplierPriceChange.objects.create(channel=channel, old_cost=channel.cost, new_cost=quote.price)
                report.price_changes += 1
                channel.cost = quote.price
            channel.is_in_stock, channel.cost_synced_at = quote.is_in_stock, now
            channel.save(update_fields=["cost", "is_in_stock", "cost_synced_at"])
        supplier.balance = locked.balance
    for product in Product.objects.filter(pk__in={channel.product_id for channel in channels}).order_by("pk"):
        taken, alert = _check_cost_against_price(product=product, now=now)
        if taken:
            report.taken_off_shelf.append(product)
        opened.append(alert)
    report.alerts = [alert for alert in opened if alert is not None]
    _notify_merchant(report.alerts)
    logger.info(
        "supplier.synced supplier=%s price_changes=%s off_shelf=%s alerts=%s",
        supplier.pk, report.price_changes, len(report.taken_off_shelf), len(report.alerts),
    )
    return report


def sync_all_suppliers(*, now: datetime | None = None, transport: Transport | None = None) -> list[SupplierSyncReport]:
    """The scheduled job: every active supplier, one at a time; one broken supplier never stops the rest."""
    reports = []
    # An upstream Kamen is reconciled by catalog.services.upstream_sync (hourly, prices follow
    # the markup there); a plain cost sync here would pause products whose price was about to follow.
    for supplier in Supplier.objects.filter(is_active=True).exclude(adapter=SupplierAdapter.KAMEN_API).order_by("pk"):
        try:
            reports.append(sync_supplier(supplier=supplier, now=now, transport=transport))
        except Exception:
            logger.exception("supplier.sync_crashed supplier=%s", supplier.pk)
    return reports


# For catalog.services.upstream_sync, which keeps docked products in step with the same alerts.
open_supplier_alert = _open_alert
resolve_supplier_alerts = _resolve_alerts
notify_merchant_of_alerts = _notify_merchant
pause_if_cost_reaches_price = _check_cost_against_price
