"""Tree figures on 100,000 distributors (medians in ms):

- tree_ancestors_ms: the upline of a deep node (one recursive query up the parent column, plain
  rows; checked once against the nested sets);
- tree_team_stats_ms: team size and team GMV of a large subtree (the nested-set bounds and the
  team-totals row of the sales rollup: one query);
- tree_team_counts_ms (for information): the dashboard's member counts of that subtree (active,
  new this month, direct, depth), one aggregate over its rows;
- portal_dashboard_ms: the agent portal's dashboard rendered through the test client for the
  head of that subtree (today / month sales, team figures, the 30-day chart).

The network is loaded in bulk with the nested-set columns computed here (a write that bypasses
the tree service), then checked against the parent column as ADR 0007 requires. The orders are
bulk-created too, bypassing ``Order.save()``, so the sales rollup is built by its repair
(``rebuild_sales_rollup``) and checked against a sum over the orders.
"""

import random
import statistics
import time
from datetime import timedelta
from decimal import Decimal

DISTRIBUTORS = 100_000
ORDERS = 100_000
BATCH = 5_000
TARGETS = {"tree_ancestors_ms": ("<", 5), "tree_team_stats_ms": ("<", 5), "portal_dashboard_ms": ("<", 150)}


def _shape(rng: random.Random) -> list[int | None]:
    """Parents by index: a few heads, then each newcomer under a recent or an early member,
    which gives both wide and deep branches (depth ~ tens of levels)."""
    parents: list[int | None] = [None] * 5
    for index in range(5, DISTRIBUTORS):
        if rng.random() < 0.7:
            parents.append(rng.randrange(max(0, index - 50), index))
        else:
            parents.append(rng.randrange(0, min(index, 2_000)))
    return parents


def _nested_sets(parents: list[int | None]) -> list[tuple[int, int, int, int]]:
    """(tree_id, lft, rght, level) per index, by an iterative depth-first walk."""
    children: dict[int, list[int]] = {}
    roots = []
    for index, parent in enumerate(parents):
        if parent is None:
            roots.append(index)
        else:
            children.setdefault(parent, []).append(index)
    result: list = [None] * len(parents)
    for tree_id, root in enumerate(roots, start=1):
        counter = 1
        stack = [(root, 0, False)]
        lefts: dict[int, int] = {}
        while stack:
            node, level, done = stack.pop()
            if done:
                result[node] = (tree_id, lefts[node], counter, level)
                counter += 1
                continue
            lefts[node] = counter
            counter += 1
            stack.append((node, level, True))
            for child in reversed(children.get(node, [])):
                stack.append((child, level + 1, False))
    return result


def _load(rng: random.Random):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from catalog.models import Category, Product, ProductType
    from distribution.models import Distributor, DistributorStatus, Grade
    from orders.models import Order, OrderStatus

    User = get_user_model()
    grade = Grade.objects.create(name="bench", rank=1, wholesale_discount_bp=8000)
    users = User.objects.bulk_create(
        [User(username=f"bench-agent-{n}", password="!") for n in range(DISTRIBUTORS)],
        batch_size=BATCH,
    )
    parents = _shape(rng)
    sets = _nested_sets(parents)
    now = timezone.now()
    # Benchmarks share one database: trees made before this one (the pipeline's chains) keep
    # their tree ids, and these come after them.
    from django.db.models import Max

    tree_offset = Distributor.objects.aggregate(top=Max("tree_id"))["top"] or 0
    # Primary keys are assigned in order, so parents can be referenced by the id to come.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('distribution_distributor', 'id'))"
        )
        first_id = cursor.fetchone()[0] + 1
    rows = []
    for index, user in enumerate(users):
        tree_id, lft, rght, level = sets[index]
        rows.append(
            Distributor(
                id=first_id + index,
                user_id=user.pk,
                parent_id=None if parents[index] is None else first_id + parents[index],
                grade=grade,
                invite_code=f"B{index:07d}",
                status=DistributorStatus.ACTIVE,
                joined_at=now - timedelta(days=rng.randrange(0, 400)),
                tree_id=tree_offset + tree_id,
                lft=lft,
                rght=rght,
                level=level,
            )
        )
    Distributor.objects.bulk_create(rows, batch_size=BATCH)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('distribution_distributor', 'id'), %s)",
            [first_id + DISTRIBUTORS],
        )
    category = Category.objects.create(name="bench-tree", slug="bench-tree")
    product = Product.objects.create(
        category=category,
        name="bench",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
    )
    orders = []
    for n in range(ORDERS):
        paid_at = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
        orders.append(
            Order(
                order_no=f"BT{n:010d}",
                status=OrderStatus.COMPLETED,
                product=product,
                product_name="bench",
                product_type=ProductType.CARD_KEY,
                quantity=1,
                unit_price=Decimal("10.00"),
                total_amount=Decimal("10.00"),
                paid_amount=Decimal("10.00"),
                paid_at=paid_at,
                contact="13800000000",
                contact_kind="mobile",
                query_password_hash="!",
                distributor_id=first_id + rng.randrange(0, DISTRIBUTORS),
                expires_at=paid_at,
            )
        )
    Order.objects.bulk_create(orders, batch_size=BATCH)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE distribution_distributor; ANALYZE orders_order;")
    return first_id


def _median_ms(func, repeats: int, *, samples: int = 5) -> float:
    """Median over at least ``samples`` calls: sub-millisecond reads take many, so one slow
    moment on a shared machine does not decide the figure."""
    func()  # warm up caches and the connection
    timings = []
    for _ in range(max(repeats, samples)):
        started = time.perf_counter()
        func()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def _check_rollup(large, totals: dict) -> None:
    """The rolled-up team figures equal a sum over the orders themselves."""
    from django.db.models import Count, F, Sum

    from distribution import selectors
    from orders.models import Order

    direct = Order.objects.filter(
        distributor_id__in=selectors.subtree(large).values("pk"),
        status__in=selectors.sold_statuses(),
    ).aggregate(orders=Count("pk"), amount=Sum(F("paid_amount") - F("refunded_amount")))
    assert (totals["orders"], totals["gmv"]) == (direct["orders"], direct["amount"]), (totals, direct)
    assert totals["members"] == selectors.subtree(large, include_self=False).count()


def run(repeats: int) -> dict[str, float]:
    from django.test import Client

    from distribution import selectors
    from distribution.models import Distributor
    from distribution.services import tree_problems
    from distribution.services.sales import rebuild_sales_rollup

    rng = random.Random(20261123)
    started = time.perf_counter()
    _load(rng)
    print(
        f"distribution tree: {DISTRIBUTORS:,} distributors and {ORDERS:,} orders loaded in {time.perf_counter() - started:.1f}s"
    )
    problems = tree_problems()
    assert not problems, problems[:5]
    started = time.perf_counter()
    rebuilt = rebuild_sales_rollup()
    print(
        f"sales rollup rebuilt in {time.perf_counter() - started:.1f}s: {rebuilt['daily_rows']:,} daily rows, {rebuilt['team_rows']:,} team totals"
    )
    deep = Distributor.objects.order_by("-level").first()
    # The head of a large team: the biggest subtree one level below a root.
    large = (
        Distributor.objects.filter(level=1)
        .extra(select={"size": "rght - lft"})  # noqa: S610 - constant SQL
        .order_by("-size")
        .first()
    )
    print(
        f"deepest node at level {deep.level}; large team of {(large.rght - large.lft - 1) // 2:,} members"
    )

    nested = list(
        Distributor.objects.filter(
            tree_id=deep.tree_id, lft__lt=deep.lft, rght__gt=deep.rght
        ).order_by("-level").values_list("pk", flat=True)
    )
    assert [row.pk for row in selectors.ancestors(deep)] == nested
    assert len(nested) == deep.level
    ancestors_ms = _median_ms(lambda: selectors.ancestors(deep), repeats, samples=50)

    def team_stats():
        fresh = Distributor.objects.get(pk=large.pk)
        return selectors.team_totals(fresh)

    team_ms = _median_ms(team_stats, repeats, samples=50)
    counts_ms = _median_ms(lambda: selectors.team_counts(large), repeats, samples=20)
    _check_rollup(large, team_stats())
    client = Client()
    client.force_login(large.user)

    def dashboard():
        response = client.get("/agent/")
        assert response.status_code == 200, response.status_code

    dashboard_ms = _median_ms(dashboard, repeats, samples=10)
    return {
        "tree_ancestors_ms": ancestors_ms,
        "tree_team_stats_ms": team_ms,
        "tree_team_counts_ms": counts_ms,
        "portal_dashboard_ms": dashboard_ms,
    }
