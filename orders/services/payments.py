"""Payments: start one, and turn every notification, query answer or manual confirmation into
"this order is paid" exactly once.

All four ways in (gateway notify, active query, staff 补单, wallet) end in ``_apply_payment``:
it stores the event under the provider's unique id, locks the order row, checks app id, amount
and currency, and marks the order paid only from "pending payment" or "expired". Fulfilment is
enqueued after the commit. A replay of a stored event gets the stored outcome.
"""

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.services import InsufficientStock, hold_card_key_reservation_statement
from commissions.services import debit_wallet_for_order
from distribution.services.four_eyes import require_not_own_order
from kamen.audit import record_audit
from kamen.db import (
    fetch_rows,
    fetch_rows_in_one_round_trip,
    insert_instance,
    insert_statement,
    inserted,
    instance_from_row,
)
from kamen.security import is_over_limit
from orders import sql as orders_sql
from orders.gateways import (
    GatewayError,
    MalformedNotification,
    PaymentNotification,
    PaymentOutcome,
    PaymentRequest,
    PaymentStart,
    SignatureInvalid,
    UnknownGateway,
    get_gateway,
)
from orders.gateways.base import NotificationAnswer
from orders.models import (
    CallbackOutcome,
    CallbackSource,
    Order,
    OrderStatus,
    PaymentAttempt,
    PaymentCallback,
    PaymentStatus,
)
from riskcontrol.services.signals import record_forged_callback

from .books import paid_order_statements
from .deposits import DEPOSIT_PAYABLE, count_first_order
from .enqueue import enqueue_after_commit, fulfilment_queue
from .gateway_payables import apply_payable_notification, payable_for
from .staff_actions import CONFIRM_PAYMENT, require_staff_action
from .state import move_locked_order
from .stock_purchase import STOCK_PURCHASE_PAYABLE
from .top_ups import TOP_UP_PAYABLE

__all__ = [
    "NotificationResult",
    "NotificationThrottled",
    "WalletPaymentUnavailable",
    "confirm_payment_manually",
    "pay_with_prepaid_balance",
    "pay_with_wallet",
    "record_payment_notification",
    "start_payment",
    "sync_payment_status",
]

logger = logging.getLogger(__name__)
# What else than an order a notification may pay, by the prefix of its number (an order's is K).
PAYABLES = (TOP_UP_PAYABLE, STOCK_PURCHASE_PAYABLE, DEPOSIT_PAYABLE)
CURRENCY = "CNY"
MAX_RAW_BODY = 20_000
_PAYABLE = (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED)


class NotificationThrottled(Exception):
    """Too many notifications that failed verification from one source: answer 429."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(retry_after)


@dataclass(frozen=True)
class NotificationResult:
    callback: PaymentCallback
    answer: NotificationAnswer

    @property
    def accepted(self) -> bool:
        return self.callback.is_accepted


def start_payment(
    *, order: Order, notify_url: str, return_url: str = "", client_ip: str = "", gateway_code: str | None = None
) -> PaymentStart:
    """Ask the gateway where to send the buyer. Records the attempt first, calls the gateway
    outside any transaction."""
    if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at <= timezone.now():
        raise ValidationError(_("订单已不可支付（已支付或已过期）"))
    code = gateway_code or order.payment_gateway or "sandbox"
    gateway = get_gateway(code)
    # One INSERT (get_or_create took four round trips): the attempt's unique gateway and
    # out_trade_no refuse a second one, and a second start for the same order keeps the first.
    with contextlib.suppress(IntegrityError):
        attempt = PaymentAttempt(gateway=code, out_trade_no=order.order_no, order=order, amount=order.total_amount)
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            attempt.save(force_insert=True)
    start = gateway.start_payment(
        PaymentRequest(
            out_trade_no=order.order_no,
            amount=order.total_amount,
            subject=order.product_name,
            notify_url=notify_url,
            return_url=return_url,
            client_ip=client_ip,
            expires_at=order.expires_at,
        )
    )
    if start.gateway_trade_no:
        PaymentAttempt.objects.filter(gateway=code, out_trade_no=order.order_no).update(
            gateway_trade_no=start.gateway_trade_no
        )
    if order.payment_gateway != code:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING_PAYMENT).update(payment_gateway=code)
        order.payment_gateway = code
    return start


def _text(body: bytes) -> str:
    return body[:MAX_RAW_BODY].decode("utf-8", "replace")


def _safe_headers(headers: Mapping[str, str]) -> dict:
    return {key: str(value)[:500] for key, value in headers.items() if key.lower() not in {"cookie", "authorization"}}


def record_payment_notification(
    *, gateway_code: str, body: bytes, headers: Mapping[str, str], source_ip: str | None = None
) -> NotificationResult:
    """A gateway's async notification: verify, store, apply. Returns what to answer the gateway.

    The signature is checked first, and only a notification that fails it is limited: a genuine
    one is never refused, whatever address it comes from (gateways notify from a handful of
    addresses, and behind a proxy every address may look alike). A forged or unreadable one is
    counted per ``source_ip`` — past KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE it raises
    NotificationThrottled without writing anything — else stored (keyed by a hash of its body),
    recorded as a risk signal of its source, and rejected; it changes nothing else.
    """
    gateway = get_gateway(gateway_code)
    headers = {key.lower(): value for key, value in headers.items()}
    try:
        notification = gateway.parse_notification(body=body, headers=headers)
    except (SignatureInvalid, MalformedNotification) as error:
        reason = _("签名无效") if isinstance(error, SignatureInvalid) else _("通知格式错误")
        if is_over_limit(
            rule="callback-unverified",
            subject=source_ip or "unknown",
            limit=settings.KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE,
            window=60,
        ):
            logger.warning("payments.notification_throttled", extra={"gateway": gateway_code, "ip": source_ip})
            raise NotificationThrottled(retry_after=60) from None
        record_forged_callback(ip=source_ip, gateway_code=gateway_code, reason=reason)
        callback = _store_rejected(
            gateway_code=gateway_code,
            event_id="unverified-" + hashlib.sha256(body).hexdigest()[:40],
            reason=reason,
            body=body,
            headers=headers,
            source_ip=source_ip,
        )
        logger.warning(
            "payments.notification_rejected", extra={"gateway": gateway_code, "reason": error.__class__.__name__}
        )
        return NotificationResult(callback, gateway.answer_notification(accepted=False))
    payable = payable_for(notification.out_trade_no, PAYABLES)
    if payable is not None:
        callback = apply_payable_notification(
            payable=payable,
            notification=notification,
            gateway_code=gateway_code,
            expected_app_id=getattr(gateway, "app_id", ""),
            source=CallbackSource.NOTIFY,
            raw_body=_text(body),
            headers=_safe_headers(headers),
            source_ip=source_ip,
        )
        return NotificationResult(callback, gateway.answer_notification(accepted=callback.is_accepted))
    callback = _apply_payment(
        notification=notification,
        gateway_code=gateway_code,
        expected_app_id=getattr(gateway, "app_id", ""),
        source=CallbackSource.NOTIFY,
        raw_body=_text(body),
        headers=_safe_headers(headers),
        source_ip=source_ip,
    )
    return NotificationResult(callback, gateway.answer_notification(accepted=callback.is_accepted))


def _store_rejected(
    *, gateway_code: str, event_id: str, reason: str, body: bytes, headers: Mapping, source_ip: str | None = None
) -> PaymentCallback:
    try:
        with transaction.atomic():
            return PaymentCallback.objects.create(
                gateway=gateway_code,
                event_id=event_id,
                outcome=CallbackOutcome.REJECTED,
                rejection_reason=reason,
                raw_body=_text(body),
                headers=_safe_headers(headers),
                source_ip=source_ip,
            )
    except IntegrityError:
        PaymentCallback.objects.filter(gateway=gateway_code, event_id=event_id).update(
            times_received=F("times_received") + 1
        )
        return PaymentCallback.objects.get(gateway=gateway_code, event_id=event_id)


def _rejection(order: Order | None, notification: PaymentNotification, expected_app_id: str) -> str:
    if expected_app_id and notification.app_id != expected_app_id:
        return _("应用 ID 不符")
    if order is None:
        return _("订单不存在")
    if notification.currency != CURRENCY:
        return _("币种不符：%(currency)s") % {"currency": notification.currency[:8]}
    if Decimal(notification.amount) != order.total_amount:
        return _("金额不符：通知 %(paid)s，订单 %(total)s") % {"paid": notification.amount, "total": order.total_amount}
    return ""


def _apply_payment(
    *,
    notification: PaymentNotification,
    gateway_code: str,
    expected_app_id: str,
    source: str,
    raw_body: str = "",
    headers: dict | None = None,
    actor=None,
    on_paid=None,
    source_ip: str | None = None,
) -> PaymentCallback:
    with transaction.atomic():
        order, existing = _lock_order_and_find_callback(notification.out_trade_no, gateway_code, notification.event_id)
        if existing is not None:
            PaymentCallback.objects.filter(pk=existing.pk).update(times_received=F("times_received") + 1)
            return existing
        fields = {
            "gateway": gateway_code,
            "event_id": notification.event_id[:128],
            "source": source,
            "order": order,
            "out_trade_no": notification.out_trade_no[:64],
            "amount": notification.amount,
            "currency": notification.currency[:8],
            "is_verified": True,
            "raw_body": raw_body,
            "headers": headers or {},
            "payload": json.loads(json.dumps(dict(notification.raw), default=str)),
            "actor": actor if getattr(actor, "is_authenticated", False) else None,
            "source_ip": source_ip,
        }
        reason = _rejection(order, notification, expected_app_id)
        if reason:
            fields.update(outcome=CallbackOutcome.REJECTED, rejection_reason=reason)
        elif notification.outcome != PaymentOutcome.SUCCEEDED:
            fields.update(outcome=CallbackOutcome.IGNORED)
            if notification.outcome in (PaymentOutcome.FAILED, PaymentOutcome.CLOSED):
                PaymentAttempt.objects.filter(
                    gateway=gateway_code, out_trade_no=order.order_no, status=PaymentStatus.PENDING
                ).update(status=notification.outcome.value)
        elif order.status not in _PAYABLE or order.paid_at is not None:
            fields.update(outcome=CallbackOutcome.DUPLICATE)
            reason = _unexpected_payment_reason(order, gateway_code, notification)
            if reason:
                # Money taken a second time (another gateway, or another trade at this one, e.g.
                # after a refund): answer success (it is recorded) and leave the reason, which
                # the console shows finance with the refund to make.
                fields["rejection_reason"] = reason[:300]
                logger.warning("payments.double_payment", extra={"order": order.order_no, "gateway": gateway_code})
        else:
            fields.update(outcome=CallbackOutcome.PAID)
            callback = PaymentCallback(**fields)
            _mark_paid(order, notification, gateway_code, source, actor, callback)
            if on_paid is not None:
                on_paid(order)
            if order.attribution.get("first_order_pending"):
                count_first_order(order=order)  # the buyer's first-order threshold (ADR 0023)
            return callback
        if order is None and fields["outcome"] == CallbackOutcome.REJECTED:
            # No order row to serialise on: two copies may race; the constraint settles it.
            try:
                with transaction.atomic():
                    return PaymentCallback.objects.create(**fields)
            except IntegrityError:
                return PaymentCallback.objects.get(gateway=gateway_code, event_id=notification.event_id)
        return _store_callback(fields)


def _unexpected_payment_reason(order: Order, gateway_code: str, notification: PaymentNotification) -> str:
    """Why a successful payment for an order that was already paid is money to give back ("" for
    the same payment reported again): it came through another gateway, or through the same one
    under another trade number than the payment the order was marked paid with."""
    if order.payment_gateway and order.payment_gateway != gateway_code:
        return _("订单已通过 %(gateway)s 支付，此笔为重复支付，请人工退款") % {"gateway": order.payment_gateway}
    trade_no = notification.gateway_trade_no[:64]
    if not trade_no:
        return ""
    paid_with = (
        PaymentAttempt.objects.filter(gateway=gateway_code, out_trade_no=order.order_no, status=PaymentStatus.SUCCEEDED)
        .values_list("gateway_trade_no", flat=True)
        .first()
    )
    if not paid_with or paid_with == trade_no:
        return ""
    return _(
        "意外付款：订单已于交易 %(paid)s 支付（当前状态：%(status)s），又收到另一笔付款（交易号 %(trade)s，"
        "¥%(amount)s），请人工退款"
    ) % {"paid": paid_with, "status": order.get_status_display(), "trade": trade_no, "amount": notification.amount}


def _store_callback(fields: dict) -> PaymentCallback:
    return insert_instance(PaymentCallback(**fields))


def _lock_order_and_find_callback(
    order_no: str, gateway_code: str, event_id: str
) -> tuple[Order | None, PaymentCallback | None]:
    """The order locked, and the callback already stored under this provider id (a replay).

    The look-up must come after the lock: a copy of this callback that held the lock may have
    stored it meanwhile. The two are one round trip: the lock, then a statement with a snapshot
    of its own that reads the (now locked) order and the callback together.
    """
    rows = fetch_rows_in_one_round_trip(
        [
            (orders_sql.LOCK_ORDER_NO, [order_no]),
            (orders_sql.ORDER_AND_CALLBACK, [gateway_code, event_id[:128], order_no]),
        ]
    )
    if not rows:
        return None, _stored_callback(gateway_code, event_id)
    start = len(Order._meta.concrete_fields)
    callback = instance_from_row(PaymentCallback, rows[0], start) if rows[0][start] is not None else None
    return instance_from_row(Order, rows[0]), callback


def _stored_callback(gateway_code: str, event_id: str) -> PaymentCallback | None:
    """The callback stored under this provider id, if any (a replay): one prepared look-up."""
    rows = fetch_rows(orders_sql.STORED_CALLBACK, [gateway_code, event_id[:128]])
    return instance_from_row(PaymentCallback, rows[0]) if rows else None


def _mark_paid(
    order: Order, notification: PaymentNotification, gateway_code: str, source: str, actor, callback: PaymentCallback
) -> None:
    """The paid attempt, the reservation held, ``callback`` stored and the order moved to paid.

    All four go in one round trip, followed by the sale's rollup statements
    (``distribution.services.sales.order_sale_statements``): its rows, which every payment of that network locks,
    are taken last, so they are held for little more than the commit and never while this
    transaction waits for another lock. The callback's id is read back at the very end."""
    from .checkout import _reserve_stock

    # Paid after its window (expired, or not yet swept): its reservation may have lapsed.
    is_late = order.status == OrderStatus.EXPIRED or order.expires_at <= timezone.now()
    in_stock = True
    if is_late:
        # Hold stock again (topping up what is still held) if there is any, else refund.
        try:
            with transaction.atomic():
                _reserve_stock(order, order.product, until=None)
        except InsufficientStock:
            in_stock = False
    move = {
        "order": order,
        "to_status": OrderStatus.PAID,
        "cause": f"{source}:{gateway_code}",
        "actor": actor,
        "also_set": {"paid_amount": notification.amount, "payment_gateway": gateway_code},
    }
    then = [_successful_attempt_statement(order, gateway_code, notification)]
    if in_stock:
        then.append(hold_card_key_reservation_statement(reference=order.order_no))
    then.append(insert_statement(callback))
    # The books (docs/adr/0020): payment and gateway fee, in the same message.
    then += paid_order_statements(order, amount=notification.amount, gateway_code=gateway_code)
    # The callback's id read back last, after the rollup's rows (locked last).
    found = (orders_sql.CALLBACK_ID, [callback.gateway, callback.event_id])
    ((callback_pk,),) = move_locked_order(**move, then=then, result=found)
    inserted(callback, callback_pk)
    if in_stock:
        enqueue_after_commit("fulfil_order_task", order_id=order.pk, queue=fulfilment_queue(order))
    else:
        enqueue_after_commit(
            "refund_order_task", order_id=order.pk, reason="late payment, out of stock", amount=str(order.paid_amount)
        )


def _successful_attempt_statement(order: Order, gateway_code: str, notification: PaymentNotification) -> tuple:
    """The attempt at this gateway is paid (the one ``start_payment`` recorded, or a new one for
    a payment made without it, e.g. a query answer or 补单): one upsert, sent with the move."""
    now = timezone.now()
    values = [order.pk, gateway_code, order.order_no, notification.gateway_trade_no[:64], Decimal(notification.amount),
              PaymentStatus.SUCCEEDED.value, now, now]  # fmt: skip
    return orders_sql.PAID_ATTEMPT, values


def sync_payment_status(*, order: Order) -> PaymentCallback | None:
    """Ask the order's gateway whether it was paid (active query), and apply the answer through
    the same path as a notification. None when the gateway knows nothing."""
    code = order.payment_gateway or "sandbox"
    try:
        gateway = get_gateway(code)
    except UnknownGateway:
        return None  # manual, wallet, or a gateway no longer configured: nothing to ask
    try:
        notification = gateway.query_payment(out_trade_no=order.order_no)
    except GatewayError:
        logger.warning("payments.query_failed", extra={"gateway": code, "order": order.order_no})
        return None
    if notification is None:
        return None
    return _apply_payment(
        notification=notification,
        gateway_code=code,
        expected_app_id=getattr(gateway, "app_id", ""),
        source=CallbackSource.QUERY,
        headers={},
    )


def confirm_payment_manually(*, order: Order, actor, reason: str, request=None) -> PaymentCallback:
    """Staff 补单: the buyer paid but no callback came. Reason required, audited, and the same
    path as a callback. An order that is already paid (or refunded) is refused with a message
    and nothing changes: a 补单 that did nothing is never reported as done."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写补单原因")]})
    if actor is None or not actor.has_perm("orders.confirm_payment_manually"):
        raise PermissionDenied("confirming a payment by hand needs orders.confirm_payment_manually")
    require_not_own_order(actor=actor, order=order, what=_("这笔人工补单"))
    require_staff_action(order=Order.objects.get(pk=order.pk), action=CONFIRM_PAYMENT)
    notification = PaymentNotification(
        gateway="manual",
        event_id=f"manual-{order.order_no}",
        out_trade_no=order.order_no,
        gateway_trade_no="",
        app_id="",
        amount=order.total_amount,
        currency=CURRENCY,
        outcome=PaymentOutcome.SUCCEEDED,
        paid_at=timezone.now(),
        raw={"reason": reason[:200]},
    )
    with transaction.atomic():
        callback = _apply_payment(
            notification=notification,
            gateway_code="manual",
            expected_app_id="",
            source=CallbackSource.MANUAL,
            actor=actor,
        )
        if callback.outcome != CallbackOutcome.PAID:
            # Paid meanwhile by a callback (or refused): undo the record, say why.
            raise ValidationError(
                _("补单未生效：%(reason)s") % {"reason": callback.rejection_reason or callback.get_outcome_display()}
            )
        record_audit(
            actor=actor,
            action="orders.payment_confirmed_manually",
            target=order,
            changes={"reason": reason[:200], "outcome": callback.outcome},
            request=request,
        )
    return callback


class WalletPaymentUnavailable(Exception):
    """The distributor wallet is not available (the commissions issue provides it)."""


def pay_with_wallet(*, order: Order, payer) -> PaymentCallback:
    """Pay ``order`` from ``payer``'s (a distributor's user) available wallet balance.

    ``commissions.services.debit_wallet_for_order`` runs in the same transaction that marks the
    order paid, under the order's row lock, so the debit and the payment stand or fall together;
    a short balance raises ``ValidationError`` and leaves the order unpaid. Twice for one order:
    the second finds the first (the event id and the journal reference are the order number).
    """
    notification = PaymentNotification(
        gateway="wallet",
        event_id=f"wallet-{order.order_no}",
        out_trade_no=order.order_no,
        gateway_trade_no="",
        app_id="",
        amount=order.total_amount,
        currency=CURRENCY,
        outcome=PaymentOutcome.SUCCEEDED,
        raw={"payer": str(getattr(payer, "pk", ""))},
    )
    # The debit runs under the order lock, only when the order is really being paid now.
    return _apply_payment(
        notification=notification,
        gateway_code="wallet",
        expected_app_id="",
        source=CallbackSource.WALLET,
        actor=payer,
        on_paid=lambda paid_order: debit_wallet_for_order(
            payer=payer, order=paid_order, amount=paid_order.total_amount
        ),
    )


def pay_with_prepaid_balance(*, order: Order, debit) -> PaymentCallback:
    """Pay ``order`` from a docking site's prepaid balance (the open API, docs/adr/0019):
    ``debit(order)`` posts the journal transaction (raising when the balance and credit limit
    do not cover it) under the order lock, in the transaction that marks the order paid, so
    the debit and the payment stand or fall together. Fulfilment follows as for any paid
    order, after the commit."""
    notification = PaymentNotification(
        gateway="prepaid",
        event_id=f"prepaid-{order.order_no}",
        out_trade_no=order.order_no,
        gateway_trade_no="",
        app_id="",
        amount=order.total_amount,
        currency=CURRENCY,
        outcome=PaymentOutcome.SUCCEEDED,
        raw={"docking_site_id": order.attribution.get("docking_site_id")},
    )
    return _apply_payment(
        notification=notification,
        gateway_code="prepaid",
        expected_app_id="",
        source=CallbackSource.PREPAID,
        on_paid=debit,
    )
