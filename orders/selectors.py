"""Reads of the orders app. Secrets are decrypted only for the buyer's own views."""

from django.conf import settings
from django.core import signing
from django.db.models import Prefetch
from django.utils.translation import gettext

from kamen import crypto
from orders.models import CallbackOutcome, DeliveryKind, Order, OrderDelivery, OrderStatus, PaymentCallback

__all__ = [
    "buyer_fields_for_display",
    "unexpected_payments",
    "deliveries_for_buyer",
    "order_for_buyer",
    "order_from_access_token",
    "order_status_summary",
]

ACCESS_SALT = "orders.access"
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
    return (
        Order.objects.select_related("product")
        .prefetch_related(
            Prefetch("deliveries", queryset=OrderDelivery.objects.select_related("card_key", "product").order_by("id"))
        )
        .filter(order_no=order_no)
        .first()
    )


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
    """The small JSON the order page polls until the goods are there. A paid order held for
    risk review says so, with the merchant's estimate of how long a review takes, instead of
    promising a delivery that waits for a person."""
    under_review = is_waiting_for_review(order=order)
    estimate = settings.RISK_REVIEW_ESTIMATE_MINUTES if under_review else None
    return {
        "order_no": order.order_no,
        "status": order.status,
        "status_label": order.get_status_display(),
        "is_final": order.status in FINAL_STATUSES,
        "is_paid": order.paid_at is not None,
        "delivered": order.deliveries.filter(is_voided=False).count(),
        "is_under_review": under_review,
        "review_estimate_minutes": estimate,
        "message": review_message(estimate) if under_review else "",
    }


def review_message(minutes: int) -> str:
    text = gettext(
        "支付成功，订单正在进行安全审核，通常约 %(minutes)s 分钟内完成，审核通过后自动发货，页面会自动刷新。"
    )
    return text % {"minutes": minutes}


def buyer_fields_for_display(*, order: Order) -> list[tuple[str, str]]:
    """(label, value) of what the buyer filled in, labelled as the product names them today
    (the field's key when it was removed since)."""
    labels = dict(order.product.custom_fields.values_list("name", "label"))
    return [(labels.get(name, name), value) for name, value in order.buyer_fields.items() if value]


def unexpected_payments(*, order: Order | None = None):
    """Payments taken for an order that was already paid (another gateway, or another trade
    after a refund): recorded as duplicates with the reason, money finance has to give back."""
    found = PaymentCallback.objects.filter(outcome=CallbackOutcome.DUPLICATE).exclude(rejection_reason="")
    return found.filter(order=order) if order is not None else found
