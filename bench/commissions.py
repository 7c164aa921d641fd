"""Commission figures (issue 5) on PostgreSQL:

- split_queries: SQL statements for the split + ledger of one delivered order with a 3-level
  distributor chain whose accounts exist (``split_commissions``: the rows, the accrual journal
  transaction, its entries and the balance caches); the most any measured split took: 3, the
  order locked, every input in one statement, the rows with their posting in another (2 when
  the caller holds the order's lock). Pinned in ``commissions/tests/test_queries.py`` too.
- split_ms: median wall time of that split in its own transaction, commit (and the journal's
  deferred balance check) included.
- settlement_commissions_per_s: one ``run_settlement`` over 100,000 pending, due commissions
  of 5,000 distributors (commissions per second, commit included). The run is checked: every
  commission settled once and the books reconcile.
- balance_read_ms: median time of the wallet read the agent portal shows
  (``selectors.wallet``: pending / available / frozen) for a distributor whose pending account
  has 1,000,000 journal entries — the cached balance, checked equal to the sum of the entries.

Bulk data is written in SQL (generate_series), not through the ORM row by row: the orders
are copies of one template order, the journal transactions balanced by construction with the
append-only and balance triggers on, and the caches moved by the same amounts.
"""

import statistics
import time
from datetime import timedelta
from decimal import Decimal

SPLITS = 200
SETTLEMENT_COMMISSIONS = 100_000
SETTLEMENT_DISTRIBUTORS = 5_000
BALANCE_ENTRIES = 1_000_000
CREDITS_PER_TRANSACTION = 10  # each generated transaction: 1 debit, 10 credits to the wallet
BALANCE_READS = 1_000
TARGETS = {
    "split_queries": ("<=", 10),
    "settlement_commissions_per_s": 20_000,
    "balance_read_ms": ("<", 5),
}


def _product(name: str):
    from catalog.models import Category, Product, ProductType

    category, _ = Category.objects.get_or_create(slug="bench-commissions", defaults={"name": "bench"})
    return Product.objects.create(
        category=category,
        name=name,
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
        cost_price=Decimal("6.00"),
    )


def _orders(product, *, count: int, prefix: str, distributor_id=None, attribution=None) -> list[int]:
    """``count`` completed orders of ``product``: one through the ORM, the rest copied from it
    in one INSERT … SELECT generate_series. Returns their ids."""
    from django.db import connection
    from django.utils import timezone

    from orders.models import Order, OrderStatus

    now = timezone.now()
    template = Order.objects.create(
        order_no=f"{prefix}-0",
        status=OrderStatus.COMPLETED,
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=Decimal("10.00"),
        total_amount=Decimal("10.00"),
        paid_amount=Decimal("10.00"),
        cost_amount=Decimal("6.00"),
        contact="bench@example.com",
        contact_kind="email",
        query_password_hash="bench",  # noqa: S106
        expires_at=now,
        paid_at=now,
        completed_at=now,
        distributor_id=distributor_id,
        attribution=attribution or {},
    )
    columns = [
        field.column
        for field in Order._meta.concrete_fields
        if field.column not in ("id", "order_no", "checkout_token")
    ]
    listed = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (order_no, {listed}) "  # noqa: S608 (names from the model)
            f"SELECT %s || n, {listed} FROM {table}, generate_series(1, %s) AS n WHERE id = %s",
            [f"{prefix}-", count - 1, template.pk],
        )
    return list(Order.objects.filter(product=product).order_by("pk").values_list("pk", flat=True))


def _chain(tag: str):
    """A three-level chain: seller → parent → grandparent (the tree service places them)."""
    from django.contrib.auth import get_user_model

    from distribution.models import DistributionSettings, Distributor, DistributorStatus, Grade

    DistributionSettings.objects.get_or_create(pk=1)
    grade = Grade.objects.create(
        name=f"bench {tag}",
        rank=500 + Grade.objects.count(),
        commission_level1_bp=1000,
        commission_level2_bp=500,
        commission_level3_bp=200,
    )
    parent = None
    made = []
    for depth in range(3):
        user = get_user_model().objects.create(username=f"bench-{tag}-{depth}")
        parent = Distributor.objects.create(
            user=user, parent=parent, grade=grade, invite_code=f"BC{tag}{depth}", status=DistributorStatus.ACTIVE
        )
        made.append(parent)
    return list(reversed(made))


def _roots(count: int, tag: str) -> list[int]:
    """``count`` distributors, each the root of their own one-node tree (bulk)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Max

    from distribution.models import Distributor, DistributorStatus, Grade

    User = get_user_model()
    grade = Grade.objects.create(name=f"bench {tag}", rank=600 + Grade.objects.count(), commission_level1_bp=1000)
    users = User.objects.bulk_create([User(username=f"bench-{tag}-{n}", password="!") for n in range(count)])  # noqa: S106
    first_tree = (Distributor.objects.aggregate(top=Max("tree_id"))["top"] or 0) + 1
    made = Distributor.objects.bulk_create(
        [
            Distributor(
                user_id=user.pk,
                grade=grade,
                invite_code=f"{tag}{n:06d}",
                status=DistributorStatus.ACTIVE,
                tree_id=first_tree + n,
                lft=1,
                rght=2,
                level=0,
            )
            for n, user in enumerate(users)
        ],
        batch_size=5_000,
    )
    return [distributor.pk for distributor in made]


# --- split ------------------------------------------------------------------------------------
def _split(repeats: int) -> dict[str, float]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from commissions.models import Commission
    from commissions.services import split_commissions
    from orders.models import Order

    seller, parent, grandparent = _chain("split")
    product = _product("bench split")
    attribution = {"distributor_id": seller.pk, "chain": [parent.pk, grandparent.pk], "link": "B", "sub_store": None}
    order_ids = _orders(
        product, count=SPLITS * repeats + 1, prefix="BS", distributor_id=seller.pk, attribution=attribution
    )
    with transaction.atomic():
        split_commissions(order=Order.objects.get(pk=order_ids[0]))  # the accounts exist from now on
    orders = list(Order.objects.filter(pk__in=order_ids[1:]).order_by("pk"))
    timings, queries = [], []
    for order in orders:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            with transaction.atomic():
                split = split_commissions(order=order)
            timings.append((time.perf_counter() - started) * 1000)
        assert len(split) == 3, f"order {order.pk}: {len(split)} commissions"
        # in production the split runs inside the delivery transaction: the BEGIN / COMMIT of
        # the bench's own transaction around it are not the split's
        queries.append(
            sum(1 for query in captured.captured_queries if query["sql"] not in ("BEGIN", "COMMIT"))
        )
    assert Commission.objects.filter(order__product=product).count() == 3 * len(order_ids)
    print(
        f"  split: {len(orders)} orders, 3 levels each: median {statistics.median(timings):.2f} ms, "
        f"p95 {sorted(timings)[int(len(timings) * 0.95)]:.2f} ms, {min(queries)}–{max(queries)} queries"
    )
    return {"split_queries": max(queries), "split_ms": round(statistics.median(timings), 2)}


# --- settlement -------------------------------------------------------------------------------
def _pending_commissions(run_number: int, distributor_ids: list[int], due_at):
    """SETTLEMENT_COMMISSIONS pending commissions (3 levels per order, distinct beneficiaries)
    accrued in the ledger: one accrual per distributor, caches moved with it."""
    from django.db import connection
    from django.db.models import Sum

    from commissions.models import AccountKind, Commission, TransactionKind
    from commissions.services.ledger import (
        Posting,
        credit,
        debit,
        merchant_account,
        post_journal_transactions,
        wallet_accounts,
    )

    product = _product(f"bench settlement {run_number}")
    order_ids = _orders(product, count=-(-SETTLEMENT_COMMISSIONS // 3), prefix=f"BT{run_number}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Commission._meta.db_table}
                (order_id, beneficiary_id, kind, level, rule_description, rate_bp, base_amount,
                 amount, reversed_amount, status, available_at, created_at)
            SELECT o.id, (%(distributors)s::bigint[])[1 + (o.n + lvl) %% %(count)s], 'level', lvl,
                   'bench', 1000, 10.00, CASE lvl WHEN 1 THEN 1.00 WHEN 2 THEN 0.50 ELSE 0.20 END,
                   0, 'pending', %(due_at)s, %(due_at)s
              FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                      FROM unnest(%(orders)s::bigint[]) AS id) AS o,
                   generate_series(1, 3) AS lvl
             WHERE o.n * 3 + lvl <= %(total)s
            """,  # noqa: S608 (the table name comes from the model)
            {
                "distributors": distributor_ids,
                "count": len(distributor_ids),
                "due_at": due_at,
                "orders": order_ids,
                "total": SETTLEMENT_COMMISSIONS,
            },
        )
    owed = dict(
        Commission.objects.filter(order__product=product)
        .values("beneficiary_id")
        .annotate(total=Sum("amount"))
        .values_list("beneficiary_id", "total")
    )
    revenue = merchant_account(AccountKind.MERCHANT_REVENUE)
    accounts = wallet_accounts(sorted(owed))
    post_journal_transactions(
        [
            Posting(
                kind=TransactionKind.ACCRUAL,
                reference=f"bench-accrual:{run_number}:{beneficiary_id}",
                lines=[debit(revenue, total), credit(accounts[beneficiary_id][AccountKind.DISTRIBUTOR_PENDING], total)],
            )
            for beneficiary_id, total in sorted(owed.items())
        ]
    )
    return product


def _settlement(repeats: int) -> dict[str, float]:
    from django.db import connection
    from django.utils import timezone

    from commissions.models import Commission, CommissionStatus
    from commissions.selectors import ledger_differences
    from commissions.services import run_settlement

    distributor_ids = _roots(SETTLEMENT_DISTRIBUTORS, "BST")
    rates = []
    for run_number in range(repeats):
        now = timezone.now()
        started = time.perf_counter()
        product = _pending_commissions(run_number, distributor_ids, now - timedelta(days=1))
        with connection.cursor() as cursor:
            # the commissions were written days before their settlement: vacuumed by then
            cursor.execute("VACUUM ANALYZE commissions_commission")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        run = run_settlement(cycle="daily", now=now, key=f"bench:{run_number}")
        elapsed = time.perf_counter() - started
        assert run.commission_count == SETTLEMENT_COMMISSIONS, run.commission_count
        assert not Commission.objects.filter(order__product=product, status=CommissionStatus.PENDING).exists()
        differences = ledger_differences()
        assert not differences["accounts"] and not differences["transactions"], differences
        rates.append(run.commission_count / elapsed)
        print(
            f"  settlement run {run_number}: {run.commission_count:,} commissions of {SETTLEMENT_DISTRIBUTORS:,} "
            f"distributors (¥{run.total_amount:,}) in {elapsed:.2f} s = {rates[-1]:,.0f}/s "
            f"(loaded in {loaded:.1f} s; books reconciled)"
        )
    return {"settlement_commissions_per_s": round(statistics.median(rates))}


# --- balance read -----------------------------------------------------------------------------
def _million_entries(distributor_id: int) -> None:
    """BALANCE_ENTRIES credits on the distributor's pending account, CREDITS_PER_TRANSACTION per
    balanced accrual (the debit on merchant revenue), and the two caches moved to match; then
    checked: every generated transaction balances and the cache equals the entries' sum."""
    from django.db import connection, transaction
    from django.utils import timezone

    from commissions.models import Account, AccountKind, JournalEntry, JournalTransaction
    from commissions.services.ledger import merchant_account, wallet_accounts

    revenue = merchant_account(AccountKind.MERCHANT_REVENUE)
    pending = wallet_accounts([distributor_id])[distributor_id][AccountKind.DISTRIBUTOR_PENDING]
    transactions = BALANCE_ENTRIES // CREDITS_PER_TRANSACTION
    credit = Decimal("0.01")
    total = credit * BALANCE_ENTRIES
    journal, entry, account = (model._meta.db_table for model in (JournalTransaction, JournalEntry, Account))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:
            # Bulk load: the triggers (append-only, deferred balance check per entry, foreign
            # keys) are off for this one transaction; what they would check is checked below.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            f"INSERT INTO {journal} (kind, reference, memo, created_at) "  # noqa: S608
            "SELECT 'accrual', 'bench-balance:' || n, 'bench', %s FROM generate_series(1, %s) AS n "
            "RETURNING id",
            [timezone.now(), transactions],
        )
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"""
            INSERT INTO {entry} (transaction_id, account_id, side, amount, created_at)
            SELECT t.id,
                   CASE WHEN k = 0 THEN %(revenue)s ELSE %(pending)s END,
                   CASE WHEN k = 0 THEN 'debit' ELSE 'credit' END,
                   CASE WHEN k = 0 THEN %(credit)s * %(per)s ELSE %(credit)s END,
                   %(now)s
              FROM unnest(%(ids)s::bigint[]) AS t(id), generate_series(0, %(per)s) AS k
            """,  # noqa: S608
            {
                "revenue": revenue.pk,
                "pending": pending.pk,
                "credit": credit,
                "per": CREDITS_PER_TRANSACTION,
                "now": timezone.now(),
                "ids": ids,
            },
        )
        cursor.execute(
            f"UPDATE {account} SET balance = balance + CASE WHEN id = %s THEN %s ELSE -%s END WHERE id IN (%s, %s)",  # noqa: S608
            [pending.pk, total, total, pending.pk, revenue.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {entry}")
        cursor.execute(f"ANALYZE {account}")
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {entry} WHERE transaction_id = ANY(%s) "  # noqa: S608
            "GROUP BY transaction_id HAVING SUM(CASE WHEN side = 'credit' THEN amount ELSE -amount END) <> 0 "
            "OR count(*) < 2) AS unbalanced",
            [ids],
        )
        assert cursor.fetchone()[0] == 0, "an unbalanced generated transaction"
        cursor.execute(
            f"SELECT count(*), COALESCE(SUM(CASE WHEN side = 'credit' THEN amount ELSE -amount END), 0) "  # noqa: S608
            f"FROM {entry} WHERE account_id = %s",
            [pending.pk],
        )
        count, summed = cursor.fetchone()
    pending.refresh_from_db()
    assert count >= BALANCE_ENTRIES and summed == pending.balance, (count, summed, pending.balance)


def _balance(repeats: int) -> dict[str, float]:
    from commissions import selectors
    from distribution.models import Distributor

    (distributor_id,) = _roots(1, "BBL")
    started = time.perf_counter()
    _million_entries(distributor_id)
    print(f"  balance: {BALANCE_ENTRIES:,} entries written in {time.perf_counter() - started:.1f} s (caches checked)")
    distributor = Distributor.objects.get(pk=distributor_id)
    expected = Decimal("0.01") * BALANCE_ENTRIES
    medians = []
    for _repeat in range(repeats):
        timings = []
        for _n in range(BALANCE_READS):
            started = time.perf_counter()
            wallet = selectors.wallet(distributor)
            timings.append((time.perf_counter() - started) * 1000)
        assert wallet["pending"] == expected, wallet
        medians.append(statistics.median(timings))
    return {"balance_read_ms": round(statistics.median(medians), 3)}


def run(repeats: int) -> dict[str, float]:
    figures = {}
    for part in (_split, _settlement, _balance):
        started = time.perf_counter()
        figures.update(part(max(repeats, 1)))
        print(f"  ({part.__name__.strip('_')} took {time.perf_counter() - started:.1f} s)")
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures
