"""Fulfilment: deliver what a paid order bought, exactly once, whatever runs it how often.

Every run takes the order row lock for each write, counts what was already delivered and
delivers only the rest, so the task, the sweeper and the back-order hook can all call
``fulfil_order`` for the same order safely. Card keys are sold (their reservation) or claimed
(``SKIP LOCKED``) in the same transaction that records the deliveries; the unique constraint on
``OrderDelivery.card_key`` is the backstop. Network calls (top-ups, email) happen outside any
transaction.
"""

import enum
import logging
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import BundleItem, Product, ProductType
from catalog.models.products import RedemptionMode
from catalog.services import (
    InsufficientStock,
    claim_card_keys,
    sell_reserved_card_keys,
    sell_reserved_card_keys_along_with,
)
from distribution.services.four_eyes import require_not_own_order
from kamen import crypto
from kamen.audit import record_audit
from orders import sql as orders_sql
from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus

from . import catalog_bridge
from .books import book_delivered_order, delivered_order_statements
from .enqueue import enqueue_after_commit
from .redemption import issue_vouchers
from .state import lock_order, move_locked_order, transition_order

__all__ = [
    "FulfilmentPending",
    "deliver_manually",
    "fulfil_backorders",
    "fulfil_order",
    "order_access_token",
    "recover_paid_orders",
    "retry_upstream_backorders",
    "send_delivery_email",
    "sweep_stalled_orders",
]

logger = logging.getLogger(__name__)
ACCESS_SALT = "orders.access"
_VOUCHER_MESSAGE = "核销券（见下方）"
_STARTABLE = (OrderStatus.PAID, OrderStatus.BACKORDERED, OrderStatus.FAILED)


class Part(enum.StrEnum):
    DONE = "done"
    WAITING = "waiting"  # manual delivery or a top-up still pending at the supplier
    # An upstream Kamen owes its answer (delivery still running there, or lost on the way):
    # asked again soon by the task's retry, never failed for it, never bought elsewhere.
    ASKING = "asking"
    OUT_OF_STOCK = "out_of_stock"
    FAILED = "failed"


class FulfilmentPending(Exception):
    """Not finished yet but worth retrying soon (a failure below the attempt limit)."""


def order_access_token(order: Order) -> str:
    """A signed token for the buyer's order link (emails); checked with a maximum age."""
    return signing.dumps(order.order_no, salt=ACCESS_SALT, compress=True)


def order_link(order: Order) -> str:
    return f"{settings.SITE_URL}{reverse('orders:order-detail', args=[order.order_no])}?t={order_access_token(order)}"


def _parts(order: Order) -> list[tuple[Product, int]]:
    product = order.product
    if product.product_type == ProductType.BUNDLE:
        items = BundleItem.objects.filter(bundle=product).select_related("component").order_by("component_id")
        return [(item.component, item.quantity * order.quantity) for item in items]
    return [(product, order.quantity)]


def _lock_unless_held(order: Order, order_is_locked: bool) -> None:
    """Take the order row lock for a delivery write, unless the caller's transaction holds it
    already (the one-transaction path of ``fulfil_order``): a second lock there is a round trip
    that protects nothing."""
    if not order_is_locked:
        Order.objects.select_for_update().only("id").get(pk=order.pk)


def _deliver_reservation(order: Order, product: Product, quantity: int) -> bool:
    """First run for a paid order, under its lock: nothing is delivered yet, and normally its
    reservation holds every key. Sold all at once or not at all, so no savepoint; False when
    the reservation is not whole (lapsed, or a reusable-key product that reserves nothing)."""
    # The sale and its deliveries in one statement (catalog's sale around the inserts).
    delivered = sell_reserved_card_keys_along_with(
        reference=order.order_no,
        product=product,
        at_least=quantity,
        write=orders_sql.DELIVERIES_OF_SOLD_KEYS,
        params={"order": order.pk},
    )
    return bool(delivered)


def _fulfil_card_keys(order: Order, product: Product, quantity: int, order_is_locked: bool = False) -> Part:
    try:
        with transaction.atomic():
            _lock_unless_held(order, order_is_locked)
            delivered = OrderDelivery.objects.filter(order=order, product=product, kind=DeliveryKind.CARD_KEY).count()
            missing = quantity - delivered
            if missing <= 0:
                return Part.DONE
            keys = sell_reserved_card_keys(reference=order.order_no, product=product)[:missing]
            if len(keys) < missing:
                # The reservation lapsed (late payment, expiry job): claim fresh keys.
                keys += claim_card_keys(product=product, quantity=missing - len(keys), reference=order.order_no)
            OrderDelivery.objects.bulk_create(
                [OrderDelivery(order=order, product=product, kind=DeliveryKind.CARD_KEY, card_key=key) for key in keys]
            )
    except InsufficientStock:
        return Part.OUT_OF_STOCK
    return Part.DONE


def _fulfil_reusable(order: Order, product: Product, quantity: int, order_is_locked: bool = False) -> Part:
    try:
        with transaction.atomic():
            _lock_unless_held(order, order_is_locked)
            if OrderDelivery.objects.filter(order=order, product=product, kind=DeliveryKind.REUSABLE_KEY).exists():
                return Part.DONE
            secret = catalog_bridge.claim_reusable_key(product=product, quantity=quantity, reference=order.order_no)
            key_id, blob = crypto.encrypt(secret)
            OrderDelivery.objects.create(
                order=order,
                product=product,
                kind=DeliveryKind.REUSABLE_KEY,
                quantity=quantity,
                content_ciphertext=blob,
                content_key_id=key_id,
            )
    except InsufficientStock:
        return Part.OUT_OF_STOCK
    return Part.DONE


def _is_network_part(product: Product) -> bool:
    """A part delivered by calling a supplier: a top-up, or card keys bought from an upstream."""
    return product.product_type == ProductType.DIRECT_RECHARGE or (
        product.product_type == ProductType.CARD_KEY and product.is_sourced_upstream
    )


def _fulfil_top_up(order: Order, product: Product, quantity: int, retry_refused: bool = False) -> Part:
    """A top-up, or a docked card-key part (``product.is_sourced_upstream``): sent through the
    product's supplier channels with failover, under the order number (a repeat finds the
    earlier try and asks about it, never buys twice). Bought keys arrive in the vault sold to
    the order; delivered here. A docked product no channel could serve is back-ordered
    (``retry_refused`` when the back-order is tried again)."""
    is_card_key = product.product_type == ProductType.CARD_KEY
    kind = DeliveryKind.CARD_KEY if is_card_key else DeliveryKind.TOP_UP
    delivered = OrderDelivery.objects.filter(order=order, product=product, kind=kind).count()
    if delivered >= (quantity if is_card_key else 1):
        return Part.DONE
    try:
        outcome = catalog_bridge.send_top_up(
            product=product,
            reference=order.order_no,
            target="" if is_card_key else order.recharge_target,
            quantity=quantity,
            **({"retry_refused": True} if retry_refused else {}),
        )
    except Exception as error:  # the supplier layer failed in a way it did not classify
        logger.warning("fulfilment.top_up_error", extra={"order": order.order_no, "error": error.__class__.__name__})
        _note_error(order, f"top-up: {error.__class__.__name__}")
        return Part.FAILED
    status = getattr(outcome, "status", "failed")
    message = str(getattr(outcome, "message", "") or "")[:300]
    if status == "succeeded":
        with transaction.atomic():
            Order.objects.select_for_update().only("id").get(pk=order.pk)
            if is_card_key:
                _deliver_bought_keys(order, product)
            else:
                OrderDelivery.objects.get_or_create(
                    order=order,
                    product=product,
                    kind=DeliveryKind.TOP_UP,
                    defaults={"quantity": quantity, "message": message},
                )
        return Part.DONE
    if status == "pending":
        if product.is_sourced_upstream:
            return Part.ASKING
        return Part.WAITING  # never re-send elsewhere: the supplier's callback or polling decides
    _note_error(order, f"top-up {status}: {message}")
    if product.is_sourced_upstream:
        return Part.OUT_OF_STOCK  # no channel could serve it now: a back-order, tried again
    return Part.FAILED


def _deliver_bought_keys(order: Order, product: Product) -> None:
    """Under the order lock: deliver the keys bought upstream for the order (stored sold to
    it), those not delivered yet."""
    from catalog.models import CardKey, CardKeyStatus

    delivered = OrderDelivery.objects.filter(order=order, product=product, kind=DeliveryKind.CARD_KEY).values(
        "card_key_id"
    )
    keys = (
        CardKey.objects.filter(product=product, sold_to=order.order_no, status=CardKeyStatus.SOLD)
        .exclude(pk__in=delivered)
        .order_by("id")
    )
    OrderDelivery.objects.bulk_create(
        [OrderDelivery(order=order, product=product, kind=DeliveryKind.CARD_KEY, card_key=key) for key in keys]
    )


def _fulfil_part(
    order: Order,
    product: Product,
    quantity: int,
    order_is_locked: bool = False,
    fresh: bool = False,
    retry_refused: bool = False,
) -> Part:
    if _is_network_part(product):
        return _fulfil_top_up(order, product, quantity, retry_refused=retry_refused)
    if product.product_type == ProductType.CARD_KEY:
        if fresh and _deliver_reservation(order, product, quantity):
            return Part.DONE
        if catalog_bridge.is_reusable_key_product(product):
            return _fulfil_reusable(order, product, quantity, order_is_locked)
        return _fulfil_card_keys(order, product, quantity, order_is_locked)
    if product.product_type == ProductType.MANUAL:
        delivered = OrderDelivery.objects.filter(order=order, product=product, kind=DeliveryKind.MANUAL).exists()
        if not delivered and product.redemption_mode != RedemptionMode.NONE:
            # A voucher product: the vouchers issued when the order concludes are the goods.
            OrderDelivery.objects.create(
                order=order, product=product, kind=DeliveryKind.MANUAL, quantity=quantity, message=_VOUCHER_MESSAGE
            )
            return Part.DONE
        return Part.DONE if delivered else Part.WAITING
    _note_error(order, f"unsupported product type {product.product_type}")
    return Part.FAILED


def _note_error(order: Order, message: str) -> None:
    Order.objects.filter(pk=order.pk).update(last_fulfilment_error=message[:300])


def _is_held_by_risk_control(order: Order) -> bool:
    """An order the checkout sent to review waits, paid, until risk staff approve it
    (approval re-enqueues fulfilment; rejection refunds it)."""
    if (order.attribution or {}).get("risk") != "review":
        return False  # no query for the ordinary order
    from riskcontrol.selectors import is_fulfilment_held

    return is_fulfilment_held(order=order)


def _start_locked(order_id: int) -> tuple[Order, bool, bool, bool]:
    """Inside a transaction: lock the order and see whether there is anything to do. Returns
    the locked order, that answer (False: not paid yet, held, or already concluded), whether
    this is the first run for a paid order, and whether it was a back-order (its suppliers'
    refusals are then asked again).

    A paid order is not written yet (``_begin_locked`` does that when needed): when its goods
    are all in the database, the one write in ``_complete_locked`` records paid → fulfilling →
    completed.
    """
    order = lock_order(pk=order_id, with_product=True)
    if order is None:
        raise Order.DoesNotExist(f"order {order_id} does not exist")
    if _is_held_by_risk_control(order):
        return order, False, False, False
    if order.status == OrderStatus.PAID:
        return order, True, True, False
    was_backordered = order.status == OrderStatus.BACKORDERED
    if order.status in _STARTABLE:
        _begin_locked(order)
    elif order.status == OrderStatus.FULFILLING:
        Order.objects.filter(pk=order.pk).update(fulfilment_attempts=order.fulfilment_attempts + 1)
        order.fulfilment_attempts += 1
    else:
        return order, False, False, False
    return order, True, False, was_backordered


def _begin_locked(order: Order) -> None:
    transition_order(
        order=order,
        to_status=OrderStatus.FULFILLING,
        cause="fulfilment started",
        order_is_locked=True,
        also_set={"fulfilment_attempts": order.fulfilment_attempts + 1},
    )


def _conclude_locked(order: Order, results: list[Part]) -> bool:
    """Inside a transaction, with the order locked and FULFILLING: settle its status. True when
    a failure below the attempt limit should be retried (raised by the caller after the commit)."""
    if order.status != OrderStatus.FULFILLING:
        return False
    if all(result == Part.DONE for result in results):
        return _complete_locked(order)
    if Part.ASKING in results:
        return True  # ask the upstream again soon; an answer owed is never a failure
    if Part.OUT_OF_STOCK in results:
        transition_order(order=order, to_status=OrderStatus.BACKORDERED, cause="out of stock", order_is_locked=True)
        return False
    if Part.FAILED not in results:
        return False  # waiting for staff or the supplier
    if order.fulfilment_attempts < settings.ORDER_FULFILMENT_MAX_ATTEMPTS:
        return True
    transition_order(order=order, to_status=OrderStatus.FAILED, cause="fulfilment failed", order_is_locked=True)
    if settings.ORDER_FULFILMENT_FAILURE_POLICY == "refund":
        enqueue_after_commit(
            "refund_order_task", order_id=order.pk, reason="fulfilment failed", amount=str(order.paid_amount)
        )
    return False


def _complete_locked(order: Order) -> bool:
    """Every part is delivered: vouchers, COMPLETED, the commission split, then after the
    commit the e-mail. An order still PAID in the database (first run) moves through
    FULFILLING in the same write."""
    if order.product.redemption_mode != RedemptionMode.NONE or order.product.product_type == ProductType.BUNDLE:
        issue_vouchers(order=order)
    also_set = {}
    via = None
    if order.status == OrderStatus.PAID:
        also_set["fulfilment_attempts"] = order.fulfilment_attempts + 1
        via = (OrderStatus.FULFILLING, "fulfilment started")
    if order.last_fulfilment_error:
        also_set["last_fulfilment_error"] = ""
    docking_site_id = (order.attribution or {}).get("docking_site_id")
    # A docking site's order (the open API) is told by webhook, in this transaction, not by e-mail.
    email = order.contact_kind == "email" and order.delivery_emailed_at is None and docking_site_id is None
    if docking_site_id is not None:
        from orders.api.services import record_delivered_event

        record_delivered_event(order=order, site_id=docking_site_id)
    if email:
        # Claimed in the completing write; _after_completion sends it once the commit is done.
        also_set["delivery_emailed_at"] = timezone.now()
    move = {"order": order, "to_status": OrderStatus.COMPLETED, "cause": "delivered", "also_set": also_set, "via": via}
    if order.distributor_id or (order.attribution or {}).get("distributor_id"):
        # Same transaction as the delivery: goods delivered and commissions owed commit
        # together, or neither does. The split's inputs are read in the move's round trip.
        from commissions.services import split_commissions, split_inputs_statement

        (inputs_row,) = move_locked_order(**move, result=split_inputs_statement(order))
        if not order.refunded_amount:
            # The books (docs/adr/0020): cost and profit, in the accrual's round trip, after it.
            split_commissions(
                order=order, order_is_locked=True, inputs_row=inputs_row, then=delivered_order_statements(order)
            )
        else:
            split_commissions(order=order, order_is_locked=True, inputs_row=inputs_row)
            book_delivered_order(order)  # the books (docs/adr/0020): cost and profit, after the split
    elif not order.refunded_amount:
        # The books (docs/adr/0020): cost of goods and profit, in the move's message.
        move_locked_order(**move, then=delivered_order_statements(order))
    else:
        transition_order(**move, order_is_locked=True)
        book_delivered_order(order)  # the books (docs/adr/0020): cost of goods and profit
    transaction.on_commit(lambda: _after_completion(order, email=email))
    return False


def fulfil_order(*, order_id: int) -> Order:
    """Deliver every part of a paid order that is not delivered yet, then settle its status:
    completed; back-ordered (out of stock); waiting (manual, pending top-up); or, after the
    last attempt, failed and handled by the merchant's policy. Safe to run any number of times.

    Orders with no network step (card keys, manual parts) run in one transaction under the
    order lock; a top-up is sent between two short transactions, never inside one.
    """
    # The row lock is the first read: an unlocked read before it would only be repeated.
    with transaction.atomic():
        locked, is_started, fresh, was_backordered = _start_locked(order_id)
        if not is_started:
            return locked
        parts = _parts(locked)
        has_top_up = any(_is_network_part(product) for product, _quantity in parts)
        if has_top_up:
            if fresh:
                _begin_locked(locked)  # committed as FULFILLING before the supplier is called
        else:
            results = [
                _fulfil_part(locked, product, quantity, order_is_locked=True, fresh=fresh)
                for product, quantity in parts
            ]
            if fresh and all(result == Part.DONE for result in results):
                retry = _complete_locked(locked)
            else:
                if fresh:
                    _begin_locked(locked)
                retry = _conclude_locked(locked, results)
    if has_top_up:
        results = [
            _fulfil_part(locked, product, quantity, retry_refused=was_backordered) for product, quantity in parts
        ]
        with transaction.atomic():
            locked = lock_order(pk=order_id, with_product=True)
            retry = _conclude_locked(locked, results)
    if retry:
        raise FulfilmentPending(locked.order_no)
    return locked


def _after_completion(order: Order, *, email: bool) -> None:
    """After the delivery commit: e-mail the buyer, tell the other apps. ``order`` is the
    instance the delivery transaction locked and wrote, so it is current without a re-read.

    ``email``: the completing write claimed the e-mail. A failed send gives the claim back and
    hands the e-mail to ``send_delivery_email_task``, which retries with backoff."""
    from orders.signals import order_completed

    if email:
        try:
            send_delivery_email(order=order, claimed=True)
        except Exception:
            logger.warning("fulfilment.email_failed", extra={"order": order.order_no}, exc_info=True)
            from .enqueue import run_task_now_or_enqueue

            run_task_now_or_enqueue("send_delivery_email_task", order_id=order.pk)
    # Announced to whoever listens; the split already ran in the delivery transaction.
    order_completed.send(sender=Order, order=order)


def send_delivery_email(*, order: Order, claimed: bool = False) -> bool:
    """E-mail the buyer the order link (signed) and the goods, once. ``claimed``: the caller's
    committed write already set ``delivery_emailed_at`` for this e-mail (the completing one).
    Anything failing after the claim gives it back, so a retry can claim and send again."""
    if order.contact_kind != "email":
        return False
    if not claimed:
        claimed = Order.objects.filter(pk=order.pk, delivery_emailed_at__isnull=True).update(
            delivery_emailed_at=timezone.now()
        )
    if not claimed:
        return False
    try:
        _send_delivery_email(order)
    except Exception:
        Order.objects.filter(pk=order.pk).update(delivery_emailed_at=None)
        raise
    return True


def _send_delivery_email(order: Order) -> None:
    from orders.selectors import deliveries_for_buyer

    lines = [
        _("您的订单 %(order_no)s 已发货：%(product)s × %(quantity)s")
        % {"order_no": order.order_no, "product": order.product_name, "quantity": order.quantity},
        "",
    ]
    if settings.ORDER_DELIVERY_EMAIL_INCLUDES_SECRETS:
        for item in deliveries_for_buyer(order=order):
            lines.append(" ".join(part for part in (item["card_no"], item["secret"], item["message"]) if part))
    else:
        lines.append(_("卡密等发货内容请点击下方链接查看。"))
    lines += ["", _("查看订单："), order_link(order), "", _("请妥善保管，切勿泄露给他人。")]
    send_mail(
        subject=_("【Kamen】订单 %(order_no)s 已发货") % {"order_no": order.order_no},
        message="\n".join(lines),
        from_email=None,
        recipient_list=[order.contact],
    )


def deliver_manually(*, order: Order, content: str, actor, request=None) -> Order:
    """Staff deliver a manual product (or the manual part of a bundle): the content is stored
    encrypted, shown to the buyer, and the order completes once every part is delivered."""
    require_not_own_order(actor=actor, order=order, what=_("人工发货"))
    content = (content or "").strip()
    if not content:
        raise ValidationError({"content": [_("请填写发货内容")]})
    manual_parts = [product for product, _quantity in _parts(order) if product.product_type == ProductType.MANUAL]
    if not manual_parts:
        raise ValidationError(_("该订单没有需要人工发货的商品"))
    key_id, blob = crypto.encrypt(content)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.FULFILLING:
            raise ValidationError(_("订单当前状态为“%(status)s”，不能发货") % {"status": locked.get_status_display()})
        for product in manual_parts:
            OrderDelivery.objects.get_or_create(
                order=locked,
                product=product,
                kind=DeliveryKind.MANUAL,
                defaults={"content_ciphertext": blob, "content_key_id": key_id, "created_by": actor},
            )
        record_audit(actor=actor, action="orders.delivered_manually", target=locked, request=request)
    return fulfil_order(order_id=order.pk)


def fulfil_backorders(*, product: Product) -> int:
    """New stock arrived: fulfil back-ordered orders that need ``product``, oldest first,
    until one of them still cannot be served. Returns how many completed."""
    bundle_ids = list(BundleItem.objects.filter(component=product).values_list("bundle_id", flat=True))
    waiting = (
        Order.objects.filter(status=OrderStatus.BACKORDERED)
        .filter(Q(product=product) | Q(product_id__in=bundle_ids))
        .order_by("paid_at", "id")
        .values_list("pk", flat=True)
    )
    completed = 0
    for order_id in list(waiting):
        order = fulfil_order(order_id=order_id)
        if order.status == OrderStatus.BACKORDERED:
            break
        completed += order.status == OrderStatus.COMPLETED
    return completed


def retry_upstream_backorders(*, now=None, limit: int = 200) -> int:
    """Back-orders of products sourced upstream (docking): no channel could serve them (the
    upstream down, out of stock, our prepaid balance there short). Tried again, every channel
    once more, when they have waited ORDER_UPSTREAM_BACKORDER_RETRY_SECONDS since the last try;
    a product whose oldest order is still refused is not tried further this round. Returns how
    many completed. Run by the stall sweeper."""
    now = now or timezone.now()
    due_before = now - timedelta(seconds=settings.ORDER_UPSTREAM_BACKORDER_RETRY_SECONDS)
    due = (
        Order.objects.filter(
            status=OrderStatus.BACKORDERED, product__is_sourced_upstream=True, status_changed_at__lt=due_before
        )
        .order_by("paid_at", "id")
        .values_list("pk", "product_id")[:limit]
    )
    refused_products: set[int] = set()
    completed = 0
    for order_id, product_id in list(due):
        if product_id in refused_products:
            continue
        try:
            order = fulfil_order(order_id=order_id)
        except FulfilmentPending:
            continue  # the upstream owes an answer: the task's retry and the sweeper ask again
        except Exception:
            logger.exception("sweeper.upstream_backorder_failed", extra={"order_id": order_id})
            continue
        if order.status == OrderStatus.BACKORDERED:
            refused_products.add(product_id)
        completed += order.status == OrderStatus.COMPLETED
    return completed


def _poll_backorders() -> int:
    """Back-orders whose card keys arrived without an import job (keys added or returned by
    hand): serve them too. Only products that now have stock are tried."""
    from catalog.models import CardKey, CardKeyStatus

    waiting = Order.objects.filter(status=OrderStatus.BACKORDERED).values_list("product_id", flat=True).distinct()
    wanted = set(waiting) | set(BundleItem.objects.filter(bundle_id__in=waiting).values_list("component_id", flat=True))
    in_stock = (
        CardKey.objects.filter(product_id__in=wanted, status=CardKeyStatus.AVAILABLE)
        .values_list("product_id", flat=True)
        .distinct()
    )
    return sum(fulfil_backorders(product=product) for product in Product.objects.filter(pk__in=list(in_stock)))


def recover_paid_orders(*, now=None, limit: int = 200) -> int:
    """Fulfil paid orders whose fulfilment never started, ORDER_RECOVERY_GRACE_SECONDS after
    payment: their Celery message was lost with Redis, is held by a dead or stuck worker, or
    was never sent (broker down at commit). Returns how many were driven.

    Run every few seconds in every Celery worker process (``orders.tasks``), not through the
    broker, so fulfilment does not depend on the broker being right (ADR 0013). Cheap when
    there is nothing to do: one range scan of ``order_status_age_idx``. Safe beside the task:
    a PAID order is only ever written under its row lock, in the one transaction that moves it
    on, so rows a worker is fulfilling now are skipped (``SKIP LOCKED``) and one it finished
    is no longer PAID when ``fulfil_order`` locks it. Orders held for risk review stay PAID
    on purpose and are left to the review (and the stall sweeper).
    """
    now = now or timezone.now()
    paid_before = now - timedelta(seconds=settings.ORDER_RECOVERY_GRACE_SECONDS)
    with transaction.atomic():
        due = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(
                ~Q(attribution__contains={"risk": "review"}), status=OrderStatus.PAID, status_changed_at__lt=paid_before
            )
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:limit]
        )
    for order_id in due:
        try:
            fulfil_order(order_id=order_id)
        except FulfilmentPending:
            pass  # its retry is the task's or the stall sweeper's business now
        except Exception:
            logger.exception("recovery.fulfil_failed", extra={"order_id": order_id})
    if due:
        logger.info("recovery.paid_orders_driven", extra={"count": len(due)})
    return len(due)


def sweep_stalled_orders(*, now=None) -> dict[str, int]:
    """Re-drive every paid order that made no progress for ORDER_STALL_MINUTES (worker killed,
    broker down when it was enqueued), retry failed ones when the policy says so, and refund
    back-orders that waited past the merchant's limit. Run by beat."""
    now = now or timezone.now()
    stalled_before = now - timedelta(minutes=settings.ORDER_STALL_MINUTES)
    statuses = [OrderStatus.PAID, OrderStatus.FULFILLING]
    if settings.ORDER_FULFILMENT_FAILURE_POLICY == "retry":
        statuses.append(OrderStatus.FAILED)
    stalled = list(
        Order.objects.filter(status__in=statuses, status_changed_at__lt=stalled_before)
        .exclude(status=OrderStatus.FULFILLING, product_type=ProductType.MANUAL)
        .order_by("paid_at", "id")
        .values_list("pk", flat=True)[:500]
    )
    counts = {"redriven": 0, "backorders_refunded": 0}
    for order_id in stalled:
        try:
            fulfil_order(order_id=order_id)
        except FulfilmentPending:
            pass
        except Exception:
            logger.exception("sweeper.fulfil_failed", extra={"order_id": order_id})
        counts["redriven"] += 1
    counts["backorders_fulfilled"] = _poll_backorders()
    counts["upstream_backorders_fulfilled"] = retry_upstream_backorders(now=now)
    from .refunds import refund_order

    too_old = now - timedelta(hours=settings.ORDER_BACKORDER_MAX_HOURS)
    for order in Order.objects.filter(status=OrderStatus.BACKORDERED, paid_at__lt=too_old)[:200]:
        try:
            refund_order(
                order=order, amount=order.paid_amount - order.refunded_amount, reason="back-order waited too long"
            )
            counts["backorders_refunded"] += 1
        except Exception:
            logger.exception("sweeper.backorder_refund_failed", extra={"order_id": order.pk})
    return counts
