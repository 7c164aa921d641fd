"""Who may see an order's page: the browser that placed it or looked it up (its session), or
the holder of a signed, expiring link. An order number alone is never enough.

Kept byte-compatible with the order pages (``orders.selectors.order_for_buyer`` on the pipeline
branch): the same session key (a list of order numbers) and the same signing salt and payload,
so a grant made here opens the order page there and a link from the delivery e-mail opens the
voucher pages here.
"""

from django.conf import settings
from django.core import signing

from orders.models import Order

__all__ = [
    "ACCESS_SALT",
    "SESSION_KEY",
    "grant_order_access",
    "has_order_access",
    "order_in_link",
    "order_from_signed_token",
    "signed_order_token",
]

ACCESS_SALT = "orders.access"
SESSION_KEY = "orders.placed"
MAX_GRANTS_PER_SESSION = 50


def _default_max_age() -> int:
    return getattr(settings, "ORDER_LINK_MAX_AGE_DAYS", 30) * 86400


def grant_order_access(*, request, order: Order) -> None:
    """Remember in this browser's session that it may open ``order`` (most recent last)."""
    granted = [number for number in request.session.get(SESSION_KEY, []) if number != order.order_no]
    request.session[SESSION_KEY] = (granted + [order.order_no])[-MAX_GRANTS_PER_SESSION:]


def signed_order_token(order: Order) -> str:
    """A token for the buyer's order link; checked with a maximum age."""
    return signing.dumps(order.order_no, salt=ACCESS_SALT, compress=True)


def order_from_signed_token(token: str, max_age: int | None = None) -> str | None:
    """The order number a valid, unexpired token names, else None."""
    if not token:
        return None
    try:
        return signing.loads(token, salt=ACCESS_SALT, max_age=max_age if max_age is not None else _default_max_age())
    except signing.BadSignature:
        return None


def order_in_link(request) -> str | None:
    """The order number the request's signed link (``?t=``) names, if valid and unexpired."""
    return order_from_signed_token(request.GET.get("t", ""))


def has_order_access(*, request, order: Order) -> bool:
    if order.order_no in request.session.get(SESSION_KEY, []):
        return True
    return order_from_signed_token(request.GET.get("t", "")) == order.order_no
