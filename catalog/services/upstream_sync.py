"""Docked products kept in step with their upstream Kamen (issue 17 §2, docs/adr/0019).

Two ways in, one effect. The upstream's webhooks (``product.price_changed``,
``product.stock_changed``, ``product.delisted``) are applied within seconds by
``receive_upstream_event``, once per event id; an hourly reconcile (``reconcile_upstream``)
reads the upstream's whole catalog and its balance, in case a webhook was lost. Either way
``apply_upstream_state`` does the work, per channel to that upstream product:

- the channel's cost is the upstream's price; the product's cost follows, and its price too
  when the channel has the merchant's markup rule (set at import);
- the upstream's stock count goes on the channel and, summed over the product's upstream
  channels, on the product, where the shop shows it like local stock;
- a delisted product goes off the shelf;
- a cost at or above the sale price takes the product off the shelf (never sell at a loss) and
  opens the supplier alert the merchant is e-mailed about, like the supplier price sync does.

The reconcile reads the full catalog rather than ``updated_since``: a key sold upstream changes
the stock without touching the product's update time, and a delisted product is simply absent
from the listing. A low prepaid balance at the upstream opens the low-balance alert below the
threshold the merchant set on the supplier.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import (
    Product,
    Supplier,
    SupplierAdapter,
    SupplierAlertKind,
    SupplierChannel,
    SupplierPriceChange,
    UpstreamWebhookReceipt,
)
from catalog.suppliers import KamenApiSupplierClient, SupplierError, Transport, client_for
from kamen import crypto
from kamen.audit import record_audit
from kamen.site import resolve_on_site

from .products import take_off_shelf, update_product
from .suppliers import (
    create_supplier,
    notify_merchant_of_alerts,
    open_supplier_alert,
    pause_if_cost_reaches_price,
    resolve_supplier_alerts,
    validate_supplier_fields,
)
from .upstream import ROUNDING_UNITS, Markup, apply_markup

logger = logging.getLogger(__name__)

WEBHOOK_SECRET_CONTEXT = b"supplier-webhook-secret"
PRODUCT_EVENTS = ("product.price_changed", "product.stock_changed", "product.delisted")
# Sent to the same callback URL by the upstream; acknowledged and recorded, handled elsewhere.
OTHER_EVENTS = ("order.delivered", "order.refunded")
_UNSET = object()

__all__ = [
    "OTHER_EVENTS",
    "PRODUCT_EVENTS",
    "UpstreamEventError",
    "UpstreamSyncReport",
    "apply_upstream_state",
    "channel_markup",
    "connect_upstream",
    "receive_upstream_event",
    "reconcile_all_upstreams",
    "reconcile_upstream",
    "record_upstream_balance",
    "set_upstream_webhook_secret",
    "upstream_webhook_secret",
]


class UpstreamEventError(ValueError):
    """A webhook body we cannot apply (a clear reason, nothing changed)."""


# --- the webhook secret ----------------------------------------------------------------------------
def set_upstream_webhook_secret(*, supplier: Supplier, secret: str, actor=None, request=None) -> None:
    """Store (encrypted) the secret the upstream signs our webhooks with; '' clears it."""
    if actor is not None and not actor.has_perm("catalog.change_supplier"):
        permission = "catalog.change_supplier"
        raise PermissionDenied(_("你没有执行此操作的权限（%(permission)s）") % {"permission": permission})
    secret = (secret or "").strip()
    if secret and not 16 <= len(secret) <= 200:
        raise ValidationError({"webhook_secret": [_("回调密钥长度应为 16 到 200 个字符")]})
    if secret:
        key_id, blob = crypto.encrypt(secret, associated_data=WEBHOOK_SECRET_CONTEXT)
    else:
        key_id, blob = "", None
    with transaction.atomic():
        Supplier.objects.filter(pk=supplier.pk).update(webhook_secret_key_id=key_id, webhook_secret_ciphertext=blob)
        record_audit(
            actor=actor,
            action="catalog.supplier.webhook_secret",
            target=supplier,
            changes={"webhook_secret": ["***", "***" if secret else ""]},
            request=request,
        )
    supplier.webhook_secret_key_id, supplier.webhook_secret_ciphertext = key_id, blob


def upstream_webhook_secret(supplier: Supplier) -> str:
    if not supplier.webhook_secret_ciphertext:
        return ""
    return crypto.decrypt(
        key_id=supplier.webhook_secret_key_id,
        blob=bytes(supplier.webhook_secret_ciphertext),
        associated_data=WEBHOOK_SECRET_CONTEXT,
    )


def connect_upstream(
    *,
    actor,
    name: str,
    base_url: str,
    app_id: str,
    app_secret: str,
    webhook_secret: str = "",
    low_balance_threshold=None,
    transport: Transport | None = None,
    request=None,
) -> Supplier:
    """A new upstream Kamen supplier, saved only once the upstream has answered a signed read
    with this key (a wrong address or key is a clear error and nothing is saved). The key's
    secret and the webhook secret are stored encrypted with the vault keys."""
    values = {
        "name": name,
        "adapter": SupplierAdapter.KAMEN_API,
        "base_url": base_url,
        "app_id": app_id,
        "is_active": True,
        "low_balance_threshold": low_balance_threshold,
    }
    cleaned = validate_supplier_fields(values=values, app_secret=app_secret, is_new=True)
    webhook_secret = (webhook_secret or "").strip()
    if webhook_secret and not 16 <= len(webhook_secret) <= 200:
        raise ValidationError({"webhook_secret": [_("回调密钥长度应为 16 到 200 个字符")]})
    if Supplier.objects.filter(name=cleaned["name"]).exists():
        raise ValidationError({"name": [_("已有同名货源“%(name)s”") % {"name": cleaned["name"]}]})
    client = KamenApiSupplierClient(
        base_url=resolve_on_site(cleaned["base_url"]),
        app_id=cleaned["app_id"],
        app_secret=app_secret.strip(),
        transport=transport,
        timeout=settings.SUPPLIER_HTTP_TIMEOUT,
    )
    try:
        balance = client.fetch_balance()
    except SupplierError as error:
        raise ValidationError(
            _("无法用这个地址和密钥读取上游（%(error)s）：请检查接口地址、密钥 ID 和密钥。")
            % {"error": str(error)[:120]}
        ) from None
    with transaction.atomic():
        supplier = create_supplier(actor=actor, app_secret=app_secret.strip(), request=request, **cleaned)
        if webhook_secret:
            set_upstream_webhook_secret(supplier=supplier, secret=webhook_secret, actor=actor, request=request)
    record_upstream_balance(supplier=supplier, balance=balance)
    return supplier


# --- one upstream product's state ------------------------------------------------------------------
def channel_markup(channel: SupplierChannel) -> Markup | None:
    if channel.markup_kind and channel.markup_value is not None and channel.markup_rounding in ROUNDING_UNITS:
        return Markup(kind=channel.markup_kind, value=channel.markup_value, rounding=channel.markup_rounding)
    return None


def _set_product_prices(*, product: Product, retail_price: Decimal | None, cost_price: Decimal) -> None:
    """As the system, audited; a product whose other fields no longer validate still follows."""
    changes = {"cost_price": cost_price} | ({"retail_price": retail_price} if retail_price is not None else {})
    if all(getattr(product, name) == value for name, value in changes.items()):
        return
    try:
        with transaction.atomic():
            update_product(product=product, actor=None, **changes)
    except ValidationError as error:
        logger.warning("upstream.reprice_forced product=%s error=%s", product.pk, error.messages)
        before = {name: str(getattr(product, name)) for name in changes}
        Product.objects.filter(pk=product.pk).update(**changes, updated_at=timezone.now())
        record_audit(
            actor=None,
            action="catalog.product.update",
            target=product,
            changes={name: [before[name], str(value)] for name, value in changes.items()},
        )


def _take_off(product: Product, reason: str) -> bool:
    product.refresh_from_db()
    if not product.is_on_shelf:
        return False
    try:
        with transaction.atomic():
            take_off_shelf(product=product, actor=None, reason=reason)
    except ValidationError:
        Product.objects.filter(pk=product.pk).update(is_on_shelf=False, off_shelf_reason=reason[:200])
        record_audit(
            actor=None,
            action="catalog.product.shelf_change",
            target=product,
            changes={"is_on_shelf": [True, False], "off_shelf_reason": [product.off_shelf_reason, reason[:200]]},
        )
    return True


def _product_upstream_stock(product_id: int) -> int | None:
    counts = list(
        SupplierChannel.objects.filter(
            product_id=product_id,
            is_active=True,
            supplier__is_active=True,
            supplier__adapter=SupplierAdapter.KAMEN_API,
            upstream_stock__isnull=False,
        ).values_list("upstream_stock", "is_in_stock")
    )
    if not counts:
        return None
    return sum(stock for stock, in_stock in counts if in_stock)


@dataclass
class StateOutcome:
    repriced: list[Product] = field(default_factory=list)
    taken_off_shelf: list[Product] = field(default_factory=list)
    alerts: list = field(default_factory=list)


def apply_upstream_state(
    *,
    supplier: Supplier,
    sku: str,
    price: Decimal | None = None,
    stock=_UNSET,
    in_stock: bool | None = None,
    delisted: bool = False,
    now: datetime | None = None,
) -> StateOutcome:
    """The upstream product ``sku`` now costs ``price`` / has ``stock`` / is gone (see the module
    doc). Arguments left out are not changed. Safe to apply twice. Alerts are returned, not
    e-mailed: the caller e-mails them after its commit."""
    now = now or timezone.now()
    outcome = StateOutcome()
    with transaction.atomic():
        channels = list(
            SupplierChannel.objects.select_for_update(of=("self",))
            .select_related("product")
            .filter(supplier=supplier, supplier_sku=str(sku))
            .order_by("pk")
        )
        for channel in channels:
            fields = []
            if price is not None and price != channel.cost:
                SupplierPriceChange.objects.create(channel=channel, old_cost=channel.cost, new_cost=price)
                channel.cost, channel.cost_synced_at = price, now
                fields += ["cost", "cost_synced_at"]
            if stock is not _UNSET and stock != channel.upstream_stock:
                channel.upstream_stock = stock
                fields.append("upstream_stock")
            if delisted:
                in_stock = False
            if in_stock is not None and in_stock != channel.is_in_stock:
                channel.is_in_stock = in_stock
                fields.append("is_in_stock")
            if delisted and channel.last_error != _("上游已下架该商品"):
                channel.last_error = _("上游已下架该商品")
                fields.append("last_error")
            if fields:
                channel.save(update_fields=fields)
            product = channel.product
            if price is not None:
                markup = channel_markup(channel)
                retail = apply_markup(price, markup) if markup is not None else None
                if retail != product.retail_price or price != product.cost_price:
                    _set_product_prices(product=product, retail_price=retail, cost_price=price)
                    outcome.repriced.append(product)
            Product.objects.filter(pk=product.pk).update(upstream_stock=_product_upstream_stock(product.pk))
            if delisted and _take_off(product, _("上游已下架该商品，系统自动下架")):
                outcome.taken_off_shelf.append(product)
        for product in {channel.product_id: channel.product for channel in channels}.values():
            taken, alert = pause_if_cost_reaches_price(product=product, now=now)
            if taken:
                outcome.taken_off_shelf.append(product)
            if alert is not None:
                outcome.alerts.append(alert)
    return outcome


# --- webhooks --------------------------------------------------------------------------------------
def _price(raw) -> Decimal:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise UpstreamEventError("price is not a number") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) or value >= Decimal("1e12"):
        raise UpstreamEventError("price must be an amount of at least 0 with at most two decimals")
    return value


def _stock(raw) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0 or raw > 2**31 - 1:
        raise UpstreamEventError("stock must be a whole number of at least 0, or null")
    return raw


def _parse_event(body: dict) -> tuple[str, str, dict]:
    if not isinstance(body, dict):
        raise UpstreamEventError("the body must be a JSON object")
    event_id, kind, data = body.get("id"), body.get("type"), body.get("data")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
        raise UpstreamEventError("id: the event id is missing")
    if kind not in PRODUCT_EVENTS + OTHER_EVENTS:
        raise UpstreamEventError(f"type: unknown event type {str(kind)[:40]!r}")
    if not isinstance(data, dict):
        raise UpstreamEventError("data must be an object")
    return event_id, kind, data


def _state_of(kind: str, data: dict) -> dict:
    product_id = data.get("product_id")
    if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
        raise UpstreamEventError("data.product_id must be the upstream's product id")
    state = {"sku": str(product_id)}
    if kind == "product.price_changed":
        state["price"] = _price(data.get("price"))
    elif kind == "product.stock_changed":
        if not isinstance(data.get("in_stock"), bool):
            raise UpstreamEventError("data.in_stock must be true or false")
        state |= {"stock": _stock(data.get("stock")), "in_stock": data["in_stock"]}
    else:
        state["delisted"] = True
    return state


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: str
    kind: str
    is_duplicate: bool
    outcome: str


def receive_upstream_event(*, supplier: Supplier, body: dict, now: datetime | None = None) -> ReceivedEvent:
    """Apply one verified webhook body, once per event id (a repeat answers as the first did).
    UpstreamEventError for a body we cannot apply: nothing is recorded, the upstream's retry
    will not help and the merchant sees the error in its delivery log."""
    event_id, kind, data = _parse_event(body)
    state = _state_of(kind, data) if kind in PRODUCT_EVENTS else None
    try:
        with transaction.atomic():
            receipt = UpstreamWebhookReceipt.objects.create(
                supplier=supplier, event_id=event_id, kind=kind, payload=body
            )
            if state is None:
                result, alerts = "recorded", []
            else:
                applied = apply_upstream_state(supplier=supplier, now=now, **state)
                alerts = applied.alerts
                result = (
                    f"repriced {len(applied.repriced)}, off shelf {len(applied.taken_off_shelf)}"
                    if (applied.repriced or applied.taken_off_shelf)
                    else "applied"
                )
            UpstreamWebhookReceipt.objects.filter(pk=receipt.pk).update(outcome=result)
    except IntegrityError:
        earlier = UpstreamWebhookReceipt.objects.filter(supplier=supplier, event_id=event_id).first()
        return ReceivedEvent(event_id, kind, True, earlier.outcome if earlier else "")
    notify_merchant_of_alerts(alerts)
    logger.info("upstream.webhook_applied supplier=%s event=%s kind=%s", supplier.pk, event_id, kind)
    return ReceivedEvent(event_id, kind, False, result)


# --- balance and the hourly reconcile ---------------------------------------------------------------
def record_upstream_balance(*, supplier: Supplier, balance: Decimal, now: datetime | None = None) -> list:
    """Our prepaid balance at the upstream, as it just told us (the reconcile, or a purchase
    answer that reports it): stored, and the low-balance alert opened below the merchant's
    threshold (resolved above it). E-mails a newly opened alert; returns the opened alerts."""
    now = now or timezone.now()
    opened = []
    with transaction.atomic():
        locked = Supplier.objects.select_for_update().get(pk=supplier.pk)
        locked.balance, locked.balance_synced_at = balance, now
        locked.save(update_fields=["balance", "balance_synced_at"])
        if locked.low_balance_threshold is not None and balance < locked.low_balance_threshold:
            alert = open_supplier_alert(
                kind=SupplierAlertKind.LOW_BALANCE,
                supplier=locked,
                message=_("上游“%(supplier)s”的预存款余额 %(balance)s 低于预警值 %(threshold)s，请尽快充值。")
                % {"supplier": locked.name, "balance": balance, "threshold": locked.low_balance_threshold},
            )
            opened += [alert] if alert is not None else []
        else:
            resolve_supplier_alerts(kind=SupplierAlertKind.LOW_BALANCE, supplier=locked, now=now)
    supplier.balance, supplier.balance_synced_at = balance, now
    notify_merchant_of_alerts(opened)
    return opened


@dataclass
class UpstreamSyncReport:
    supplier: Supplier
    balance: Decimal | None = None
    products_seen: int = 0
    repriced: int = 0
    delisted: int = 0
    taken_off_shelf: int = 0
    alerts: list = field(default_factory=list)
    error: str = ""


def reconcile_upstream(
    *, supplier: Supplier, transport: Transport | None = None, now: datetime | None = None
) -> UpstreamSyncReport:
    """Balance and the whole catalog read from the upstream (no transaction open meanwhile),
    then every docked product brought in step (see the module doc)."""
    now = now or timezone.now()
    report = UpstreamSyncReport(supplier=supplier)
    try:
        client = client_for(supplier, transport=transport)
        balance = client.fetch_balance()
        offered = {item.sku: item for item in client.list_products()}
    except (SupplierError, crypto.DecryptionError) as error:
        report.error = str(error)[:300]
        logger.warning("upstream.reconcile_failed supplier=%s error=%s", supplier.pk, report.error)
        with transaction.atomic():
            Supplier.objects.filter(pk=supplier.pk).update(last_sync_error=report.error)
            alert = open_supplier_alert(
                kind=SupplierAlertKind.SYNC_FAILED,
                supplier=supplier,
                message=_("上游“%(supplier)s”商品与余额同步失败：%(error)s")
                % {"supplier": supplier.name, "error": report.error},
            )
        report.alerts = [alert] if alert is not None else []
        notify_merchant_of_alerts(report.alerts)
        return report
    report.balance = balance
    report.products_seen = len(offered)
    report.alerts += record_upstream_balance(supplier=supplier, balance=balance, now=now)
    alerts = []
    docked = sorted(set(SupplierChannel.objects.filter(supplier=supplier).values_list("supplier_sku", flat=True)))
    for sku in docked:
        item = offered.get(sku)
        if item is None:
            applied = apply_upstream_state(supplier=supplier, sku=sku, delisted=True, now=now)
            report.delisted += 1
        else:
            applied = apply_upstream_state(
                supplier=supplier, sku=sku, price=item.price, stock=item.stock, in_stock=item.in_stock, now=now
            )
        report.repriced += len(applied.repriced)
        report.taken_off_shelf += len(applied.taken_off_shelf)
        alerts += applied.alerts
    with transaction.atomic():
        Supplier.objects.filter(pk=supplier.pk).update(prices_synced_at=now, last_sync_error="")
        resolve_supplier_alerts(kind=SupplierAlertKind.SYNC_FAILED, supplier=supplier, now=now)
    notify_merchant_of_alerts(alerts)
    report.alerts += alerts
    logger.info(
        "upstream.reconciled supplier=%s seen=%s repriced=%s delisted=%s off_shelf=%s",
        supplier.pk,
        report.products_seen,
        report.repriced,
        report.delisted,
        report.taken_off_shelf,
    )
    return report


def reconcile_all_upstreams(
    *, transport: Transport | None = None, now: datetime | None = None
) -> list[UpstreamSyncReport]:
    """The hourly job: every active upstream Kamen, one at a time; one broken upstream never
    stops the others."""
    reports = []
    for supplier in Supplier.objects.filter(is_active=True, adapter=SupplierAdapter.KAMEN_API).order_by("pk"):
        try:
            reports.append(reconcile_upstream(supplier=supplier, transport=transport, now=now))
        except Exception:
            logger.exception("upstream.reconcile_crashed supplier=%s", supplier.pk)
    return reports
