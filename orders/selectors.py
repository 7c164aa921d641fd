"""Reads of the orders app. Secrets are decrypted only for the buyer's own views."""

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext

from catalog.models import CardKey, Product
from kamen import crypto
from kamen.db import fetch_rows, instance_from_row, instances_from_arrays, prefetched
from orders import sql as orders_sql
from orders.models import CallbackOutcome, DeliveryKind, Order, OrderDelivery, OrderStatus, PaymentCallback

__all__ = [
    "buyer_fields_for_display",
    "unexpected_payments",
    "deliveries_for_buyer",
    "has_vouchers",
    "order_for_buyer",
    "order_from_access_token",
    "order_status_by_number",
    "order_status_summary",
    "order_status_url",
    "status_token_is_valid",
]

ACCESS_SALT = "orders.access"
STATUS_SALT = "orders.status"
SESSION_KEY = "orders.placed"
FINAL_STATUSES = {
    OrderStatus.COMPLETED,
    OrderStatus.FAILED,
    OrderStatus.REFUNDED,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.EXPIRED,
}


def order_from_access_token(token: str) -> str | None:
    try:
        return signing.loads(token, salt=ACCESS_SALT, max_age=settings.ORDER_LINK_MAX_AGE_DAYS * 86400)
    except signing.BadSignature:
        return None


def order_for_buyer(*, request, order_no: str) -> Order | None:
    """The order if this browser may see it: the session that placed it, or a valid signed
    link. An order number alone is never enough."""
    allowed = order_no in request.session.get(SESSION_KEY, [])
    token = request.GET.get("t", "")
    if not allowed and token and order_from_access_token(token) == order_no:
        allowed = True
    if not allowed:
        return None
    rows = fetch_rows(orders_sql.order_page(), {"order_no": order_no[:32]})
    return _order_from_page_row(rows[0]) if rows else None


def _order_from_page_row(row) -> Order:
    """The instances ``Order.objects.select_related("product")`` with its deliveries prefetched
    (their card keys and products joined, by id) would be, from ``orders_sql.order_page``."""
    order = instance_from_row(Order, row)
    start = len(Order._meta.concrete_fields)
    Order.product.field.set_cached_value(order, instance_from_row(Product, row, start))
    start += len(Product._meta.concrete_fields)
    deliveries = instances_from_arrays(OrderDelivery, row, start)
    start += len(OrderDelivery._meta.concrete_fields)
    keys = instances_from_arrays(CardKey, row, start)
    start += len(CardKey._meta.concrete_fields)
    products = instances_from_arrays(Product, row, start)
    for delivery, key, product in zip(deliveries, keys, products, strict=True):
        OrderDelivery.card_key.field.set_cached_value(delivery, key)
        OrderDelivery.product.field.set_cached_value(delivery, product)
        OrderDelivery.order.field.set_cached_value(delivery, order)
    prefetched(order, "deliveries", deliveries)
    order.has_vouchers = row[-1]  # read by has_vouchers(): the page asks for vouchers only then
    return order


def has_vouchers(order: Order) -> bool:
    """Whether the order may have vouchers to show: known from the page's statement, else
    assumed (the caller then reads them)."""
    return getattr(order, "has_vouchers", True)


def deliveries_for_buyer(*, order: Order) -> list[dict]:
    """What the buyer received, decrypted: card number, secret, message, per delivery."""
    items = []
    for delivery in order.deliveries.all():
        if delivery.is_voided:
            continue
        card_no, secret = "", ""
        if delivery.kind == DeliveryKind.CARD_KEY:
            card_no = delivery.card_key.card_no
            secret = crypto.decrypt(key_id=delivery.card_key.key_id, blob=bytes(delivery.card_key.secret_ciphertext))
        elif delivery.content_ciphertext:
            secret = crypto.decrypt(key_id=delivery.content_key_id, blob=bytes(delivery.content_ciphertext))
        items.append(
            {
                "product": delivery.product.name,
                "kind": delivery.kind,
                "kind_label": delivery.get_kind_display(),
                "card_no": card_no,
                "secret": secret,
                "message": delivery.message,
            }
        )
    return items


def is_waiting_for_review(*, order: Order) -> bool:
    """Paid, and held by risk control until staff decide (no query for an ordinary order)."""
    if order.paid_at is None or order.status not in (OrderStatus.PAID, OrderStatus.FULFILLING):
        return False
    from riskcontrol.selectors import is_fulfilment_held

    return is_fulfilment_held(order=order)


def order_status_summary(*, order: Order) -> dict:
    """The small JSON the order page polls until the goods are there (the deliveries prefetched
    by ``order_for_buyer`` are counted without another query). A paid order held for risk
    review says so, with the merchant's estimate of how long a review takes, instead of
    promising a delivery that waits for a person."""
    delivered = sum(1 for delivery in order.deliveries.all() if not delivery.is_voided)
    summary = _summary(order.order_no, order.status, order.paid_at is not None, delivered)
    return _with_review(summary, under_review=is_waiting_for_review(order=order))


def _with_review(summary: dict, *, under_review: bool) -> dict:
    estimate = settings.RISK_REVIEW_ESTIMATE_MINUTES if under_review else None
    summary.update(
        is_under_review=under_review,
        review_estimate_minutes=estimate,
        message=review_message(estimate) if under_review else "",
    )
    return summary


def review_message(minutes: int) -> str:
    text = gettext(
        "支付成功，订单正在进行安全审核，通常约 %(minutes)s 分钟内完成，审核通过后自动发货，页面会自动刷新。"
    )
    return text % {"minutes": minutes}


def _summary(order_no: str, status: str, is_paid: bool, delivered: int) -> dict:
    return {
        "order_no": order_no,
        "status": status,
        "status_label": str(OrderStatus(status).label),
        "is_final": status in FINAL_STATUSES,
        "is_paid": is_paid,
        "delivered": delivered,
    }


def _status_signer() -> signing.Signer:
    return signing.Signer(salt=STATUS_SALT)


def order_status_url(*, order_no: str) -> str:
    """The URL the order page polls: it carries a signature that opens this order's status and
    nothing else, so each poll needs neither the session nor more than one query. It says
    only what the page already showed (status, paid, how many deliveries), never the goods."""
    signature = _status_signer().signature(order_no)
    return f"{reverse('orders:order-status', args=[order_no])}?s={signature}"


def status_token_is_valid(*, order_no: str, token: str) -> bool:
    return bool(token) and constant_time_compare(_status_signer().signature(order_no), token)


def order_status_by_number(*, order_no: str) -> dict | None:
    """``order_status_summary`` of the order with this number, in one prepared statement (one
    more look-up only for a paid order that checkout sent to risk review)."""
    rows = fetch_rows(orders_sql.STATUS, [order_no[:32]])
    if not rows:
        return None
    status, is_paid, delivered, sent_to_review = rows[0]
    if not sent_to_review:
        return _with_review(_summary(order_no, status, is_paid, delivered), under_review=False)
    order = Order.objects.filter(order_no=order_no).only("order_no", "status", "paid_at", "attribution").first()
    if order is None:
        return None
    delivered = order.deliveries.filter(is_voided=False).count()
    summary = _summary(order.order_no, order.status, order.paid_at is not None, delivered)
    return _with_review(summary, under_review=is_waiting_for_review(order=order))


def buyer_fields_for_display(*, order: Order) -> list[tuple[str, str]]:
    """(label, value) of what the buyer filled in, labelled as the product names them today
    (the field's key when it was removed since)."""
    if not order.buyer_fields:
        return []  # most orders: no question asked, so no labels to read
    labels = dict(order.product.custom_fields.values_list("name", "label"))
    return [(labels.get(name, name), value) for name, value in order.buyer_fields.items() if value]


def unexpected_payments(*, order: Order | None = None):
    """Payments taken for an order that was already paid (another gateway, or another trade
    after a refund): recorded as duplicates with the reason, money finance has to give back."""
    found = PaymentCallback.objects.filter(outcome=CallbackOutcome.DUPLICATE).exclude(rejection_reason="")
    return found.filter(order=order) if order is not None else found


def payable_orders_of_distributor(*, distributor_id: int):
    """The orders a distributor placed for themselves (logged in at checkout) that still wait
    for payment: what the portal's wallet payment page offers, and nothing of anyone else."""
    return Order.objects.filter(
        attribution__buyer_distributor_id=distributor_id,
        status=OrderStatus.PENDING_PAYMENT,
        expires_at__gt=timezone.now(),
    ).order_by("-created_at")


def payable_order_of_distributor(*, distributor_id: int, order_no: str) -> Order | None:
    return Order.objects.filter(attribution__buyer_distributor_id=distributor_id, order_no=order_no).first()
