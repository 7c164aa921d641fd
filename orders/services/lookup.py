"""Buyer order look-up (自助查单): order number or contact, plus the order's query password.

Guessing is what this must stop. Failed attempts are counted in the cache (Redis in real mode;
this process's own counters while Redis is down, ``kamen.security.counters``) per order number
/ contact and per client IP; reaching the limit locks that key out for
ORDER_LOOKUP_LOCKOUT_MINUTES, and a correct password during the lock-out is refused too, so a
lock-out cannot be probed. A wrong password and an unknown order number get the same error and
take the same time (a dummy hash is checked when there is no order), so neither reveals whether
an order exists. A successful look-up returns orders; the caller grants this browser access to
them, and only then do their pages show any secret.
"""

import hashlib
import logging
import math
import re
import time
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from kamen.security import counters
from orders.models import Order

from .query_password import check_query_password, hash_query_password

__all__ = [
    "LookupFailed",
    "LookupLocked",
    "LookupUnavailable",
    "lookup_orders",
    "mask_contact",
    "normalise_contact",
]

logger = logging.getLogger(__name__)
# A contact with more orders than this is looked up among its most recent ones only: checking a
# password hash costs real CPU, and the look-up must not become a way to burn it.
MAX_ORDERS_PER_CONTACT = 20
MAX_PASSWORD_LENGTH = 128
_CACHE_PREFIX = "orders:lookup"


class LookupFailed(Exception):
    """Wrong password, unknown order number or contact: one message for all of them."""

    def __init__(self):
        super().__init__(_("订单号/联系方式或查询密码不正确"))


class LookupLocked(Exception):
    def __init__(self, minutes: int):
        self.minutes = minutes
        super().__init__(_("尝试次数过多，请 %(minutes)s 分钟后再试") % {"minutes": minutes})


class LookupUnavailable(Exception):
    """The attempt counters cannot be read (cache down): refuse rather than allow guessing."""

    def __init__(self):
        super().__init__(_("查单服务暂时不可用，请稍后再试"))


@lru_cache(maxsize=4)
def _dummy_hash(hasher: str) -> str:
    return hash_query_password("kamen-lookup-dummy-password")


def _check_dummy(password: str) -> None:
    check_query_password(password, _dummy_hash(getattr(settings, "ORDER_QUERY_PASSWORD_HASHER", "keyed")))


def normalise_contact(raw: str) -> str:
    value = (raw or "").strip()
    if "@" in value:
        return value.lower()
    value = re.sub(r"[\s\-()]", "", value)
    if value.startswith("+86"):
        value = value[3:]
    return value


def mask_contact(contact: str) -> str:
    """What the look-up result shows: enough for the buyer to recognise, too little to harvest."""
    if "@" in contact:
        name, _at, domain = contact.partition("@")
        return f"{name[:2]}***@{domain}"
    if len(contact) >= 7:
        return f"{contact[:3]}****{contact[-4:]}"
    return contact[:1] + "****"


def _digest(value: str) -> str:
    # Contacts are personal data: the cache keys carry a hash, never the value.
    return hashlib.sha256(f"{settings.SECRET_KEY}:{value}".encode()).hexdigest()[:32]


def _scopes(*, identifier: str, ip: str | None) -> list[tuple[str, int]]:
    scopes = [(f"id:{_digest(identifier)}", settings.ORDER_LOOKUP_MAX_ATTEMPTS)]
    if ip:
        scopes.append((f"ip:{_digest(ip)}", settings.ORDER_LOOKUP_MAX_ATTEMPTS_PER_IP))
    return scopes


def _lockout_seconds() -> int:
    return settings.ORDER_LOOKUP_LOCKOUT_MINUTES * 60


def _check_not_locked(scopes) -> None:
    now = time.time()
    locked_until = 0.0
    for scope, _limit in scopes:
        until = counters.get(f"{_CACHE_PREFIX}:lock:{scope}")
        if until and float(until) > now:
            locked_until = max(locked_until, float(until))
    if locked_until:
        raise LookupLocked(max(1, math.ceil((locked_until - now) / 60)))


def _record_failure(scopes) -> None:
    """Count one failed attempt under every scope; the one that reaches its limit is locked out."""
    window = _lockout_seconds()
    for scope, limit in scopes:
        counter = f"{_CACHE_PREFIX}:fail:{scope}"
        failures = counters.bump(counter, window)
        if failures >= limit:
            counters.set(f"{_CACHE_PREFIX}:lock:{scope}", time.time() + window, window)
            counters.delete(counter)


def lookup_orders(*, password: str, order_no: str = "", contact: str = "", ip: str | None = None) -> list[Order]:
    """The orders that ``order_no`` or ``contact`` names and whose query password is ``password``.

    Raises ValidationError for an empty form, LookupLocked while locked out, LookupFailed for
    anything that does not match (counted), LookupUnavailable when the counters are down.
    """
    order_no = (order_no or "").strip().upper()
    contact = normalise_contact(contact)
    password = str(password or "")
    errors = {}
    if not order_no and not contact:
        errors["identifier"] = [_("请填写订单号或下单时的联系方式")]
    if not password:
        errors["password"] = [_("请填写查询密码")]
    elif len(password) > MAX_PASSWORD_LENGTH:
        errors["password"] = [_("查询密码过长")]
    if errors:
        raise ValidationError(errors)

    identifier = f"order:{order_no}" if order_no else f"contact:{contact}"
    scopes = _scopes(identifier=identifier, ip=ip)
    try:
        _check_not_locked(scopes)
    except LookupLocked:
        raise
    except Exception:
        logger.exception("orders.lookup_counters_unavailable")
        raise LookupUnavailable() from None

    if order_no:
        candidates = list(Order.objects.select_related("product").filter(order_no=order_no)[:1])
    else:
        candidates = list(
            Order.objects.select_related("product")
            .filter(contact=contact)
            .order_by("-created_at", "-id")[:MAX_ORDERS_PER_CONTACT]
        )
    if not candidates:
        _check_dummy(password)
    matches = [order for order in candidates if check_query_password(password, order.query_password_hash)]

    try:
        if not matches:
            _record_failure(scopes)
        else:
            counters.delete(f"{_CACHE_PREFIX}:fail:{scopes[0][0]}")
    except Exception:
        logger.exception("orders.lookup_counters_unavailable")
        raise LookupUnavailable() from None
    if not matches:
        logger.info("orders.lookup_failed", extra={"by": "order_no" if order_no else "contact", "ip": ip})
        raise LookupFailed()
    return matches
