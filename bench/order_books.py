"""Order-books figures (issue 18, docs/adr/0020) on PostgreSQL:

- order_books_ms: median wall time of every journal line of one delivered order with a 3-level
  chain, from revenue to profit, in one transaction with its commit (the journal's deferred
  balance checks included): the payment and its gateway fee (``payment_statements``), the
  commission split with its accrual (``split_commissions``), and the cost of goods — the
  delivered key's batch cost, read by the statement — and the profit (``delivery_statements``).
  Sent as the pipeline sends them: the payment's books with the order's lock and the split's
  inputs in one round trip, the accrual and the delivery's books in the next, then the commit.
  The split alone is ``split_ms`` (bench/commissions.py).
- statement_match_lines_per_s: a 100,000-line gateway statement (Alipay's trade-bill format,
  payments and refunds) parsed and matched line by line against 100,000 book records, with
  differences planted in 1 % of the lines (all found: checked).
"""

import statistics
import time
from decimal import Decimal

ORDERS = 200
STATEMENT_LINES = 100_000
TARGETS = {"order_books_ms": ("<", 5), "statement_match_lines_per_s": 20_000}


def _delivered_orders(count: int):
    """``count`` completed orders of a card-key product through a 3-level chain, each with one
    key sold to it from a batch that has a cost (bulk, as bench/commissions does)."""
    from django.db import connection

    from catalog.models import CardKey, CardKeyBatch

    from .commissions import _chain, _orders, _product

    seller, parent, grandparent = _chain("books")
    product = _product("bench books")
    attribution = {"distributor_id": seller.pk, "chain": [parent.pk, grandparent.pk], "link": "B", "sub_store": None}
    order_ids = _orders(product, count=count, prefix="BB", distributor_id=seller.pk, attribution=attribution)
    batch = CardKeyBatch.objects.create(product=product, unit_cost=Decimal("6.00"), key_count=count)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {CardKey._meta.db_table}
                    (product_id, batch_id, card_no, secret_ciphertext, key_id, fingerprint, status, created_at,
                     sold_at, reserved_for, sold_to)
                SELECT %s, %s, '', '\\x00'::bytea, 'bench', 'bench-books-' || o.id, 'sold', now(), now(), '', o.order_no
                  FROM orders_order o WHERE o.id = ANY(%s)""",  # noqa: S608 (model metadata)
            [product.pk, batch.pk, order_ids],
        )
    return order_ids


def _order_books(repeats: int) -> dict[str, float]:
    from django.db import transaction

    from commissions.book_selectors import order_books
    from commissions.services import books, split_commissions, split_inputs_statement
    from kamen.db import fetch_rows_in_one_round_trip
    from orders import sql as orders_sql
    from orders.models import Order

    order_ids = _delivered_orders(ORDERS * repeats + 1)
    orders = list(Order.objects.filter(pk__in=order_ids).select_related("product").order_by("pk"))

    def keep_books(order) -> tuple[float, float]:
        """The statements as the pipeline sends them: the payment's books with the order's lock
        and the split's inputs (the callback's and the move's messages), the accrual with the
        delivery's books (cost and profit) after it, then the commit."""
        started = time.perf_counter()
        with transaction.atomic():
            (inputs_row,) = fetch_rows_in_one_round_trip(
                [
                    *books.payment_statements(
                        order_id=order.pk, order_no=order.order_no, amount=order.paid_amount, fee=Decimal("0.06")
                    ),
                    (orders_sql.LOCK_ORDER_NO, [order.order_no]),
                    split_inputs_statement(order),
                ]
            )
            middle = time.perf_counter()
            split_commissions(
                order=order,
                order_is_locked=True,
                inputs_row=inputs_row,
                then=books.delivery_statements(
                    order_id=order.pk, order_no=order.order_no, parts=[(order.product_id, 1)]
                ),
            )
        done = time.perf_counter()
        return (done - started) * 1000, (middle - started) * 1000

    keep_books(orders[0])  # the merchant's accounts and the prepared statements exist from now on
    timings = [keep_books(order) for order in orders[1:]]
    sample = order_books(order_id=orders[-1].pk)
    assert (sample.paid, sample.fee, sample.cost, sample.commission_total) == (
        Decimal("10.00"), Decimal("0.06"), Decimal("6.00"), Decimal("1.70")
    ), sample  # fmt: skip
    assert sample.profit == Decimal("2.24"), sample.profit
    # Its stand-in keys (no real ciphertext, key id "bench") must not outlive it: the HTTP benches
    # that follow start the real stack, which refuses a database holding secrets its keys cannot open.
    from catalog.models import CardKey

    CardKey.objects.filter(key_id="bench", fingerprint__startswith="bench-books-").delete()
    whole = statistics.median(t for t, _first in timings)
    first = statistics.median(b for _t, b in timings)
    print(
        f"  order books: {len(timings)} orders, median {whole:.2f} ms"
        f" (the first round trip — payment, lock, split inputs — {first:.2f} ms)"
    )
    return {"order_books_ms": round(whole, 2)}


def _statement_match(repeats: int) -> dict[str, float]:
    from orders.gateways.statements import StatementLine, alipay_statement, parse_statement
    from orders.services.reconciliation import BookPayment, BookRefund, match_statement

    lines, payments, refunds = [], {}, {}
    for n in range(STATEMENT_LINES):
        amount = Decimal(1000 + n % 50_000) / 100
        fee = (amount * Decimal("0.006")).quantize(Decimal("0.01"))
        order_no = f"K{n:08d}"
        if n % 10 == 9:  # a refund of the order before it
            payer, half = f"K{n - 1:08d}", (amount / 2).quantize(Decimal("0.01"))
            refunds[f"{payer}-R"] = BookRefund(f"{payer}-R", payer, half, Decimal("0.00"))
            lines.append(StatementLine(True, payer, f"{payer}-R", f"T{n - 1}", half, Decimal("0.00")))
            continue
        payments[order_no] = BookPayment(order_no, amount, fee)
        planted = n % 100 == 0
        lines.append(StatementLine(False, order_no, "", f"T{n}", amount, fee + (Decimal("0.01") if planted else 0)))
    content = alipay_statement(lines, day="2026-12-07")
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        parsed = parse_statement(content, statement_format="alipay")
        matched, differences = match_statement(parsed, payments, refunds)
        rates.append(len(parsed) / (time.perf_counter() - started))
        assert len(parsed) == STATEMENT_LINES and len(differences) == STATEMENT_LINES // 100, len(differences)
    print(
        f"  statement: {STATEMENT_LINES:,} lines, {len(content) / 1e6:.1f} MB,"
        f" median {statistics.median(rates):,.0f} lines/s"
    )
    return {"statement_match_lines_per_s": round(statistics.median(rates))}


def run(repeats: int) -> dict[str, float]:
    figures = {}
    for part in (_order_books, _statement_match):
        started = time.perf_counter()
        figures.update(part(max(repeats, 1)))
        print(f"  ({part.__name__.strip('_')} took {time.perf_counter() - started:.1f} s)")
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures
