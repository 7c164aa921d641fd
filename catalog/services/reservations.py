"""Card-key reservations: stock held for an unpaid order during its payment window.

A reservation is a card key in status ``reserved`` with ``reserved_for`` = the order number
(``reference``). Reserving uses ``FOR UPDATE SKIP LOCKED`` like claiming, so concurrent
checkouts take different keys instead of queueing on the same ones. Selling a reservation is
the fulfilment step; releasing it puts the keys back on sale.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import CardKey, CardKeyStatus, Product

from .stock import InsufficientStock, _delivery_ordering

__all__ = [
    "hold_card_key_reservation",
    "release_card_key_reservation",
    "release_expired_reservations",
    "reserve_card_keys",
    "sell_reserved_card_keys",
]


def reserve_card_keys(*, product: Product, quantity: int, reference: str, until: datetime | None) -> list[CardKey]:
    """Reserve ``quantity`` available, unexpired keys of ``product`` for ``reference``.

    All or nothing: too few keys raises InsufficientStock and reserves none. Calling it again
    for the same reference and product tops the reservation up to ``quantity`` (never more), so
    a retried checkout does not hold twice the stock.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    if not reference:
        raise ValueError("a reservation needs a reference")
    now = timezone.now()
    with transaction.atomic():
        # Reservations whose window passed go back on sale first, so stock never stays stuck
        # when the expiry job is late or not running (the embedded mode has no beat).
        _release_lapsed(product=product, now=now)
        held = CardKey.objects.filter(product=product, status=CardKeyStatus.RESERVED, reserved_for=reference).count()
        missing = quantity - held
        if missing <= 0:
            return list(CardKey.objects.filter(product=product, status=CardKeyStatus.RESERVED, reserved_for=reference))
        candidates = (
            CardKey.objects.filter(product=product, status=CardKeyStatus.AVAILABLE)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .order_by(*_delivery_ordering(product))
            .select_for_update(skip_locked=True, of=("self",))
        )
        keys = list(candidates.only("id")[:missing])
        if len(keys) < missing:
            raise InsufficientStock(product, quantity, held + len(keys))
        CardKey.objects.filter(pk__in=[key.pk for key in keys]).update(
            status=CardKeyStatus.RESERVED, reserved_for=reference, reserved_until=until, reserved_at=now
        )
    return keys


def _release_lapsed(*, product: Product, now: datetime) -> int:
    return CardKey.objects.filter(
        product=product, status=CardKeyStatus.RESERVED, reserved_until__isnull=False, reserved_until__lt=now
    ).update(status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None)


def hold_card_key_reservation(*, reference: str) -> int:
    """Keep a reservation until it is sold (the order was paid): it no longer lapses by time."""
    return CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference).update(reserved_until=None)


def release_card_key_reservation(*, reference: str) -> int:
    """Put every key still reserved for ``reference`` back on sale. Safe to call twice."""
    return CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference).update(
        status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None
    )


def sell_reserved_card_keys(*, reference: str, product: Product | None = None) -> list[CardKey]:
    """Mark the keys reserved for ``reference`` sold to it and return them (locked rows).

    Run inside the caller's transaction that records the delivery, so a crash between the two
    leaves the keys reserved, not sold and lost. Keys already sold to ``reference`` are not
    returned again.
    """
    now = timezone.now()
    with transaction.atomic():
        queryset = CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference)
        if product is not None:
            queryset = queryset.filter(product=product)
        keys = list(queryset.order_by("id").select_for_update(of=("self",)))
        if keys:
            CardKey.objects.filter(pk__in=[key.pk for key in keys]).update(
                status=CardKeyStatus.SOLD, sold_at=now, sold_to=reference, reserved_until=None
            )
    for key in keys:
        key.status, key.sold_at, key.sold_to = CardKeyStatus.SOLD, now, reference
    return keys


def release_expired_reservations(*, now: datetime | None = None) -> int:
    """Put keys whose reservation window has passed back on sale (beat job). A paid order's
    reservation has no end time and is never released here."""
    now = now or timezone.now()
    return CardKey.objects.filter(
        status=CardKeyStatus.RESERVED, reserved_until__isnull=False, reserved_until__lt=now
    ).update(status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None)
