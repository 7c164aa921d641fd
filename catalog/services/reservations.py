"""Card-key reservations: stock held for an unpaid order during its payment window.

A reservation is a card key in status ``reserved`` with ``reserved_for`` = the order number
(``reference``). Reserving uses ``FOR UPDATE SKIP LOCKED`` like claiming, so concurrent
checkouts take different keys instead of queueing on the same ones. Selling a reservation is
the fulfilment step; releasing it puts the keys back on sale.
"""

import contextlib
import functools
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import CardKey, CardKeyStatus, Product
from kamen.db import fetch_rows, instance_from_row, select_list

from .stock import InsufficientStock, _delivery_ordering, picked_keys_cte

__all__ = [
    "hold_card_key_reservation",
    "hold_card_key_reservation_statement",
    "reserve_picked_keys_cte",
    "release_card_key_reservation",
    "release_expired_reservations",
    "reserve_card_keys",
    "sell_reservation_sql",
    "sell_reserved_card_keys",
]


def reserve_card_keys(*, product: Product, quantity: int, reference: str, until: datetime | None) -> list[CardKey]:
    """Reserve ``quantity`` available, unexpired keys of ``product`` for ``reference``.

    All or nothing: too few keys raises InsufficientStock and reserves none. Calling it again
    for the same reference and product tops the reservation up to ``quantity`` (never more), so
    a retried checkout does not hold twice the stock. Returns the keys it reserved now.

    Reservations whose window passed go back on sale when the available keys run short, so
    stock never stays stuck when the expiry job is late or not running (the embedded mode has
    no beat); the ordinary checkout pays for none of that.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    if not reference:
        raise ValueError("a reservation needs a reference")
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement writes all or nothing, so no savepoint round trips. A shortage leaves the
        # few keys it looked at locked until the caller's transaction ends (a checkout ends at once).
        reserve, scope = _reserve_in_one_statement, contextlib.nullcontext()
    else:
        reserve, scope = _reserve_portable, transaction.atomic()
    arguments = {"product": product, "quantity": quantity, "reference": reference, "until": until, "now": now}
    with scope:
        try:
            return reserve(**arguments)
        except InsufficientStock:
            if not _release_lapsed(product=product, now=now):
                raise
        return reserve(**arguments)


def _reserve_in_one_statement(*, product, quantity, reference, until, now) -> list[CardKey]:
    """Count what ``reference`` holds, pick and lock what is missing (``SKIP LOCKED``), mark it
    reserved only if that makes ``quantity``: one round trip, like ``claim_card_keys``."""
    parameters = {"product": product.pk, "reference": reference, "until": until, "now": now, "quantity": quantity}
    rows = fetch_rows(_reserve_sql(product.delivery_order), parameters)
    held, found = rows[0][0], rows[0][1]
    if held + found < quantity:
        raise InsufficientStock(product, quantity, held + found)  # nothing was reserved
    return [CardKey(pk=row[2]) for row in rows if row[2] is not None]


@functools.cache
def _reserve_sql(delivery_order: str) -> str:
    """The statuses are literals, not parameters: the prepared statement's plans can then use
    the partial indexes on available and reserved keys."""
    reserved = CardKeyStatus.RESERVED.value
    picked = picked_keys_cte(delivery_order, limit="GREATEST(%(quantity)s - (SELECT held FROM held), 0)")
    return f"""
        WITH held AS (
            SELECT count(*) AS held FROM catalog_cardkey
            WHERE reserved_for = %(reference)s AND status = '{reserved}' AND product_id = %(product)s
        ), {picked}, found AS (
            SELECT count(*) AS found FROM picked
        ), reserved AS (
            UPDATE catalog_cardkey AS card_key
            SET status = '{reserved}', reserved_for = %(reference)s, reserved_until = %(until)s, reserved_at = %(now)s
            FROM picked, found, held
            WHERE card_key.id = picked.id AND found.found + held.held >= %(quantity)s
            RETURNING card_key.id
        )
        SELECT held.held, found.found, reserved.id FROM held, found LEFT JOIN reserved ON true
    """  # noqa: S608 (constants and model metadata, no input)


def reserve_picked_keys_cte(*, only_with: str) -> str:
    """The CTE ``reserved``: the keys ``picked_keys_cte`` (stock) picked, marked reserved for
    ``%(reference)s`` until ``%(until)s`` when the caller's CTE ``only_with`` has a row (its
    write happened). Parameters: reference, until, now."""
    return f"""reserved AS (
            UPDATE catalog_cardkey AS card_key
            SET status = '{CardKeyStatus.RESERVED.value}', reserved_for = %(reference)s, reserved_until = %(until)s,
                reserved_at = %(now)s
            FROM picked WHERE card_key.id = picked.id AND EXISTS (SELECT 1 FROM {only_with})
            RETURNING card_key.id
        )"""  # noqa: S608 (constants, no input)


def _reserve_portable(*, product, quantity, reference, until, now) -> list[CardKey]:
    held = CardKey.objects.filter(product=product, status=CardKeyStatus.RESERVED, reserved_for=reference).count()
    missing = quantity - held
    if missing <= 0:
        return []
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
    if connection.vendor == "postgresql":
        return len(fetch_rows(*hold_card_key_reservation_statement(reference=reference)))
    return CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference).update(reserved_until=None)


def hold_card_key_reservation_statement(*, reference: str) -> tuple[str, list]:
    """``hold_card_key_reservation`` as ``(sql, params)``, for a caller that sends it with its
    other writes in one round trip (``kamen.db.fetch_rows_in_one_round_trip``; PostgreSQL)."""
    return _HOLD_SQL, [reference]


_HOLD_SQL = (
    f"UPDATE catalog_cardkey SET reserved_until = NULL"  # noqa: S608 (constants, no input)
    f" WHERE reserved_for = %s AND status = '{CardKeyStatus.RESERVED.value}' RETURNING id"
)


def release_card_key_reservation(*, reference: str) -> int:
    """Put every key still reserved for ``reference`` back on sale. Safe to call twice."""
    return CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference).update(
        status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None
    )


def sell_reserved_card_keys(*, reference: str, product: Product | None = None, at_least: int = 0) -> list[CardKey]:
    """Mark the keys reserved for ``reference`` sold to it and return them (locked rows).
    With ``at_least``, all or nothing: fewer reserved keys than that sells none.

    Run inside the caller's transaction that records the delivery, so a crash between the two
    leaves the keys reserved, not sold and lost. Keys already sold to ``reference`` are not
    returned again.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One UPDATE … RETURNING: it locks the rows it changes, so no SELECT … FOR UPDATE first.
        rows = fetch_rows(
            _sell_sql(product is not None, bool(at_least)),
            {"now": now, "reference": reference, "product": getattr(product, "pk", None), "at_least": at_least},
        )
        return sorted((instance_from_row(CardKey, row) for row in rows), key=lambda key: key.pk)
    with transaction.atomic():
        queryset = CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=reference)
        if product is not None:
            queryset = queryset.filter(product=product)
        keys = list(queryset.order_by("id").select_for_update(of=("self",)))
        if len(keys) < at_least:
            return []
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


def sell_reservation_sql(*, by_product: bool, all_or_nothing: bool, returning: str) -> str:
    """The statement ``sell_reserved_card_keys`` runs (PostgreSQL), ``RETURNING returning``,
    for a caller that records its deliveries in the same statement (a CTE around it). Named
    parameters: ``now``, ``reference``, and ``product`` / ``at_least`` when asked for."""
    return _sell_sql(by_product, all_or_nothing, returning)


@functools.cache
def _sell_sql(by_product: bool, all_or_nothing: bool, returning: str | None = None) -> str:
    reserved, sold = CardKeyStatus.RESERVED.value, CardKeyStatus.SOLD.value
    product_filter = "AND product_id = %(product)s" if by_product else ""
    enough = (
        f"AND (SELECT count(*) FROM catalog_cardkey WHERE reserved_for = %(reference)s AND status = '{reserved}'"  # noqa: S608
        f" {product_filter}) >= %(at_least)s"
        if all_or_nothing
        else ""
    )
    return f"""
        UPDATE catalog_cardkey SET status = '{sold}', sold_at = %(now)s, sold_to = %(reference)s, reserved_until = NULL
        WHERE reserved_for = %(reference)s AND status = '{reserved}' {product_filter} {enough}
        RETURNING {returning or select_list(CardKey, "catalog_cardkey")}
    """  # noqa: S608 (constants and model metadata, no input)
