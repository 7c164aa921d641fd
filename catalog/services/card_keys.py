"""Card keys of an order: reserve them for the payment window, sell the reservation on
delivery, or claim keys outright; and put a reservation back on sale.

Reserving and claiming use ``FOR UPDATE SKIP LOCKED``: concurrent checkouts and deliveries
take different keys instead of queueing on the same ones, and never the same key. A
reservation is a card key in status ``reserved`` with ``reserved_for`` = the order number
(``reference``). The statements are in ``catalog.sql``.
"""

import contextlib
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from catalog import sql as catalog_sql
from catalog.models import CardKey, CardKeyStatus, Product
from kamen.db import fetch_rows, instance_from_row

__all__ = [
    "InsufficientStock",
    "claim_card_keys",
    "hold_card_key_reservation",
    "hold_card_key_reservation_statement",
    "release_card_key_reservation",
    "release_expired_reservations",
    "reserve_card_keys",
    "reserve_card_keys_along_with",
    "sell_reserved_card_keys",
    "sell_reserved_card_keys_along_with",
]


class InsufficientStock(Exception):
    def __init__(self, product: Product, wanted: int, available: int):
        super().__init__(f"{product}: {wanted} card keys wanted, {available} available")
        self.wanted = wanted
        self.available = available


def claim_card_keys(*, product: Product, quantity: int, reference: str = "") -> list[CardKey]:
    """Mark ``quantity`` available, unexpired keys of ``product`` sold and return them.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take different rows instead of queueing
    on the same ones; all or nothing: too few keys raises InsufficientStock and claims none.
    Keys come back in the product's delivery order.

    The hot path of fulfilment, so one statement (``catalog.sql.claim``, prepared by the
    driver) with no ORM query building: it picks and locks the keys, marks them sold only if
    there are enough, and returns them with how many it found. Outside a transaction that
    statement is its own transaction (no BEGIN/COMMIT round trips); inside one, a savepoint
    still releases the locks of a claim that found too few keys.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    parameters = {"product": product.pk, "now": timezone.now(), "quantity": quantity, "reference": reference}
    in_transaction = connection.in_atomic_block or not connection.get_autocommit()
    with transaction.atomic() if in_transaction else contextlib.nullcontext():
        rows = fetch_rows(catalog_sql.claim(product.delivery_order), parameters)
        if rows[0][0] < quantity:
            raise InsufficientStock(product, quantity, rows[0][0])  # nothing was marked sold
    attribute_names = [field.attname for field in CardKey._meta.concrete_fields]
    return [CardKey.from_db(connection.alias, attribute_names, row[1:]) for row in rows]


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
    # One statement writes all or nothing, so no savepoint round trips. A shortage leaves the
    # few keys it looked at locked until the caller's transaction ends (a checkout ends at once).
    arguments = {"product": product, "quantity": quantity, "reference": reference, "until": until, "now": now}
    try:
        return _reserve_in_one_statement(**arguments)
    except InsufficientStock:
        if not _release_lapsed(product=product, now=now):
            raise
    return _reserve_in_one_statement(**arguments)


def _reserve_in_one_statement(*, product, quantity, reference, until, now) -> list[CardKey]:
    """Count what ``reference`` holds, pick and lock what is missing (``SKIP LOCKED``), mark it
    reserved only if that makes ``quantity``: one round trip, like ``claim_card_keys``."""
    parameters = {"product": product.pk, "reference": reference, "until": until, "now": now, "quantity": quantity}
    rows = fetch_rows(catalog_sql.reserve(product.delivery_order), parameters)
    held, found = rows[0][0], rows[0][1]
    if held + found < quantity:
        raise InsufficientStock(product, quantity, held + found)  # nothing was reserved
    return [CardKey(pk=row[2]) for row in rows if row[2] is not None]


def _release_lapsed(*, product: Product, now: datetime) -> int:
    return CardKey.objects.filter(
        product=product, status=CardKeyStatus.RESERVED, reserved_until__isnull=False, reserved_until__lt=now
    ).update(status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None)


def hold_card_key_reservation(*, reference: str) -> int:
    """Keep a reservation until it is sold (the order was paid): it no longer lapses by time."""
    return len(fetch_rows(*hold_card_key_reservation_statement(reference=reference)))


def hold_card_key_reservation_statement(*, reference: str) -> tuple[str, list]:
    """``hold_card_key_reservation`` as ``(sql, params)``, for a caller that sends it with its
    other writes in one round trip (``kamen.db.fetch_rows_in_one_round_trip``)."""
    return catalog_sql.HOLD, [reference]


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
    # One UPDATE … RETURNING: it locks the rows it changes, so no SELECT … FOR UPDATE first.
    rows = fetch_rows(
        catalog_sql.sell(by_product=product is not None, all_or_nothing=bool(at_least)),
        {"now": timezone.now(), "reference": reference, "product": getattr(product, "pk", None), "at_least": at_least},
    )
    return sorted((instance_from_row(CardKey, row) for row in rows), key=lambda key: key.pk)


def release_expired_reservations(*, now: datetime | None = None) -> int:
    """Put keys whose reservation window has passed back on sale (beat job). A paid order's
    reservation has no end time and is never released here."""
    now = now or timezone.now()
    return CardKey.objects.filter(
        status=CardKeyStatus.RESERVED, reserved_until__isnull=False, reserved_until__lt=now
    ).update(status=CardKeyStatus.AVAILABLE, reserved_for="", reserved_until=None, reserved_at=None)


def reserve_card_keys_along_with(
    *, product: Product, quantity: int, reference: str, until: datetime | None, write: str, also=(), params: dict
) -> int | None:
    """Reserve like ``reserve_card_keys`` and write the caller's row in the same statement (one
    round trip, all or nothing, no transaction of its own): ``write`` is an
    ``INSERT … SELECT … FROM {stock} WHERE stock.found >= %(quantity)s`` that runs only when
    there are enough keys; ``also``, more CTEs the caller's statement needs (they may read
    ``written``, the new row's id). Returns the new row's id, or None when there were too few
    keys (nothing written or reserved; lapsed reservations are not released here)."""
    parameters = {**params, "product": product.pk, "quantity": quantity, "reference": reference, "until": until,
                  "now": timezone.now()}  # fmt: skip
    statement = catalog_sql.reserve_along_with(product.delivery_order, write, tuple(also))
    # Inside a caller's transaction, a savepoint: a failed write (a duplicate) must not break it.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        ((written,),) = fetch_rows(statement, parameters)
    return written


def sell_reserved_card_keys_along_with(
    *, reference: str, product: Product, at_least: int, write: str, params: dict
) -> list:
    """``sell_reserved_card_keys`` (all or nothing) with the caller's rows for the sold keys
    written in the same statement: ``write`` reads the CTE ``sold`` (column ``id``). Returns
    what ``write`` returns (none when the reservation was not whole: nothing sold)."""
    parameters = {**params, "now": timezone.now(), "reference": reference, "product": product.pk, "at_least": at_least}
    return fetch_rows(catalog_sql.sell_along_with(write), parameters)
