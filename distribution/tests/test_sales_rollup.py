"""The sales rollup behind the portal's figures: kept in step with the orders as they are paid
and refunded (through the order state machine the pipeline uses) and with staff moves, equal to
a recomputation from scratch, and the dashboard shows the same numbers as summing the orders."""

import importlib
import threading
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distribution import selectors, services
from distribution.models import Distributor, DistributorDailySales, DistributorTeamTotals
from distribution.services.sales import rebuild_sales_rollup
from orders.models import Order, OrderStatus
from orders.services.state import transition_order

from .factories import DistributorFactory, GradeFactory, ProductFactory

SOLD = {str(status) for status in selectors.sold_statuses()}


def place_order(distributor, *, amount: Decimal, product=None) -> Order:
    product = product or ProductFactory()
    now = timezone.now()
    return Order.objects.create(
        order_no=f"R{Order.objects.count() + 1:010d}-{distributor.pk}",
        status=OrderStatus.PENDING_PAYMENT,
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=amount,
        total_amount=amount,
        contact="13812345678",
        contact_kind="mobile",
        query_password_hash="x",
        distributor_id=distributor.pk,
        expires_at=now + timedelta(minutes=15),
    )


def pay(order: Order, *, days_ago: int = 0) -> Order:
    """Paid, delivered — the moves payments and fulfilment make; ``paid_at`` set to a past day
    in the same UPDATE as the payment, as a late callback would."""
    paid_at = timezone.now() - timedelta(days=days_ago)
    transition_order(
        order=order,
        to_status=OrderStatus.PAID,
        cause="test payment",
        also_set={"paid_amount": order.total_amount, "paid_at": paid_at},
    )
    transition_order(order=order, to_status=OrderStatus.FULFILLING, cause="test")
    transition_order(order=order, to_status=OrderStatus.COMPLETED, cause="test")
    return order


def refund(order: Order, amount: Decimal) -> Order:
    """A refund as ``orders.services.refunds`` records it: the new status and the refunded
    total in one transition."""
    refunded = order.refunded_amount + amount
    full = refunded == order.paid_amount
    transition_order(
        order=order,
        to_status=OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED,
        cause="test refund",
        also_set={"refunded_amount": refunded},
    )
    return order


def recomputed() -> tuple[dict, dict]:
    """From scratch: {(distributor, day): (orders, amount)} and {distributor: (orders, amount)}
    of the whole team, straight from the orders and the parent column."""
    daily = defaultdict(lambda: (0, Decimal("0.00")))
    for order in Order.objects.filter(status__in=SOLD, paid_at__isnull=False):
        key = (order.distributor_id, timezone.localdate(order.paid_at))
        orders, amount = daily[key]
        daily[key] = (orders + 1, amount + order.paid_amount - order.refunded_amount)
    parents = dict(Distributor.objects.values_list("pk", "parent_id"))
    team = defaultdict(lambda: (0, Decimal("0.00")))
    for (seller, _day), (orders, amount) in daily.items():
        node = seller
        while node is not None:
            team_orders, team_amount = team[node]
            team[node] = (team_orders + orders, team_amount + amount)
            node = parents[node]
    return dict(daily), dict(team)


def stored() -> tuple[dict, dict]:
    daily = {
        (row.distributor_id, row.day): (row.orders, row.amount)
        for row in DistributorDailySales.objects.exclude(orders=0)
    }
    team = {
        row.distributor_id: (row.orders, row.amount)
        for row in DistributorTeamTotals.objects.exclude(orders=0)
    }
    return daily, team


def assert_rollup_matches_orders():
    assert stored() == recomputed()


steps = st.lists(
    st.tuples(
        st.sampled_from(["pay", "pay", "partial_refund", "full_refund", "unpaid", "move"]),
        st.integers(0, 10_000),
        st.integers(1, 50_000),  # amount in fen
        st.integers(0, 40),  # days ago
    ),
    min_size=1,
    max_size=20,
)


@pytest.mark.django_db
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=steps)
def test_random_payments_refunds_and_moves_keep_the_rollup_equal_to_the_orders(owner_user, operations):
    # Given a small network (examples share the test's transaction, so networks accumulate)
    grade = GradeFactory()
    root = DistributorFactory(grade=grade)
    child = DistributorFactory(grade=grade, parent=root)
    DistributorFactory(grade=grade, parent=child)
    DistributorFactory(grade=grade)
    product = ProductFactory()
    paid: list[Order] = []
    # When orders are paid, refunded in part or in full, left unpaid, and members moved
    for kind, pick, fen, days_ago in operations:
        members = list(Distributor.objects.order_by("pk"))
        seller = members[pick % len(members)]
        amount = Decimal(fen) / 100
        if kind == "move":
            target = members[(pick // 7) % len(members)]
            if target.tree_id == seller.tree_id and seller.lft <= target.lft <= seller.rght:
                target = None
            services.move_subtree(distributor=seller, new_parent=target, actor=owner_user, reason="property")
        elif kind == "unpaid":
            place_order(seller, amount=amount, product=product)
        elif kind == "pay" or not paid:
            paid.append(pay(place_order(seller, amount=amount, product=product), days_ago=days_ago))
        else:
            order = paid[pick % len(paid)]
            order.refresh_from_db()
            left = order.paid_amount - order.refunded_amount
            if left <= 0:
                continue
            refund(order, left if kind == "full_refund" else max(min(amount, left - Decimal("0.01")), Decimal("0.01")))
    # Then the rollup equals a recomputation from the orders, and so does the repair's result
    assert_rollup_matches_orders()
    rebuild_sales_rollup()
    assert_rollup_matches_orders()


@pytest.mark.django_db
def test_rebuild_command_repairs_a_rollup_that_missed_bulk_written_orders():
    # Given orders written in bulk (bypassing Order.save, as a data import or the bench does)
    seller = DistributorFactory(parent=DistributorFactory())
    product = ProductFactory()
    now = timezone.now()
    Order.objects.bulk_create(
        [
            Order(
                order_no=f"BULK{n}",
                status=OrderStatus.COMPLETED,
                product=product,
                product_name=product.name,
                product_type=product.product_type,
                quantity=1,
                unit_price=Decimal("10.00"),
                total_amount=Decimal("10.00"),
                paid_amount=Decimal("10.00"),
                paid_at=now,
                contact="13812345678",
                contact_kind="mobile",
                query_password_hash="x",
                distributor_id=seller.pk,
                expires_at=now,
            )
            for n in range(3)
        ]
    )
    assert selectors.team_sales(seller)["amount"] == Decimal("0.00")
    # When the repair runs
    call_command("rebuild_sales_rollup", stdout=open("/dev/null", "w"))
    # Then the figures count them
    assert selectors.team_sales(seller) == {"orders": 3, "amount": Decimal("30.00")}
    assert selectors.team_sales(seller.parent)["amount"] == Decimal("30.00")
    assert_rollup_matches_orders()


@pytest.mark.django_db
def test_the_migration_fills_the_rollup_from_existing_orders(sample_network):
    # Given orders whose rollup rows are gone (as before the migration)
    DistributorDailySales.objects.all().delete()
    DistributorTeamTotals.objects.all().delete()
    migration = importlib.import_module("distribution.migrations.0007_sales_rollup")
    # When the migration's fill runs
    with connection.schema_editor() as editor:
        migration.fill_rollup(None, editor)
    # Then the rollup is the orders' recomputation
    assert_rollup_matches_orders()
    assert selectors.team_sales(sample_network)["amount"] == Decimal("247.13")


@pytest.mark.django_db
def test_a_failed_payment_transaction_leaves_the_rollup_untouched():
    # Given a seller
    seller = DistributorFactory()
    order = place_order(seller, amount=Decimal("20.00"))
    # When the payment's transaction rolls back after the order was marked paid
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        pay(order)
        raise RuntimeError("the gateway record failed")
    # Then nothing was rolled up
    assert selectors.team_sales(seller) == {"orders": 0, "amount": Decimal("0.00")}
    assert_rollup_matches_orders()


@pytest.fixture
def sample_network():
    """head → a → a1, head → b; orders over the last 40 days in every state that matters."""
    grade = GradeFactory()
    head = DistributorFactory(grade=grade)
    a = DistributorFactory(grade=grade, parent=head)
    a1 = DistributorFactory(grade=grade, parent=a)
    b = DistributorFactory(grade=grade, parent=head)
    outsider = DistributorFactory(grade=grade)
    product = ProductFactory()
    plan = [
        (head, "12.50", 0, None),
        (a, "30.00", 0, "partial"),
        (a1, "99.99", 1, None),
        (a1, "5.00", 3, "full"),
        (b, "42.00", 8, None),
        (b, "18.18", 29, "partial"),
        (a, "60.00", 35, None),
        (outsider, "1000.00", 0, None),
    ]
    for seller, amount, days_ago, refunded in plan:
        order = pay(place_order(seller, amount=Decimal(amount), product=product), days_ago=days_ago)
        if refunded == "partial":
            refund(order, Decimal("7.77"))
        elif refunded == "full":
            refund(order, order.paid_amount)
    place_order(a, amount=Decimal("77.00"), product=product)  # never paid
    head.refresh_from_db()
    return head


def _dashboard_from_orders(viewer) -> dict:
    """The figures as the portal computed them before the rollup: summing the orders."""
    members = set(selectors.subtree(viewer).values_list("pk", flat=True))
    today = timezone.localdate()
    by_day = defaultdict(lambda: [Decimal("0.00"), 0])
    for order in Order.objects.filter(distributor_id__in=members, status__in=SOLD):
        day = timezone.localdate(order.paid_at)
        by_day[day][0] += order.paid_amount - order.refunded_amount
        by_day[day][1] += 1
    month = [day for day in by_day if day >= today.replace(day=1) and day <= today]
    return {
        "today": {"amount": by_day[today][0], "orders": by_day[today][1]},
        "month": {
            "amount": sum((by_day[day][0] for day in month), Decimal("0.00")),
            "orders": sum(by_day[day][1] for day in month),
        },
        "chart": [
            (today - timedelta(days=offset), by_day[today - timedelta(days=offset)][0])
            for offset in range(29, -1, -1)
        ],
        "gmv": sum((amount for amount, _orders in by_day.values()), Decimal("0.00")),
    }


@pytest.mark.django_db
def test_dashboard_numbers_are_those_of_the_orders_for_a_sample_network(sample_network, client):
    # Given a sample network with paid, refunded and unpaid orders over 40 days
    expected = _dashboard_from_orders(sample_network)
    # When the portal's figures are read
    figures = selectors.dashboard(sample_network)
    # Then they are the sums over the orders, day by day
    assert figures["today"] == expected["today"]
    assert figures["today"] == {"amount": Decimal("34.73"), "orders": 2}
    assert figures["month"] == expected["month"]
    assert [(day.day, day.amount) for day in figures["chart"]] == expected["chart"]
    totals = selectors.team_totals(sample_network)
    assert totals == {"members": 3, "orders": 6, "gmv": expected["gmv"]}
    assert totals["gmv"] == Decimal("247.13")
    assert selectors.team_stats(sample_network)["gmv"] == expected["gmv"]
    # And the page renders them
    client.force_login(sample_network.user)
    response = client.get("/agent/")
    assert response.status_code == 200
    assert "34.73" in response.content.decode()


@pytest.mark.django_db
def test_a_move_carries_the_team_total_to_the_new_upline(sample_network, owner_user):
    # Given head's branch a (own 30.00 − 7.77 and 60.00, a1's 99.99)
    a = Distributor.objects.get(parent=sample_network, lft=sample_network.lft + 1)
    other = DistributorFactory()
    # When staff move a under another head
    services.move_subtree(distributor=a, new_parent=other, actor=owner_user, reason="reorg")
    # Then a's team total left head and joined the new head
    assert selectors.team_sales(other)["amount"] == Decimal("182.22")
    sample_network.refresh_from_db()
    assert selectors.team_sales(sample_network)["amount"] == Decimal("64.91")
    assert_rollup_matches_orders()


@pytest.mark.django_db(transaction=True)
def test_concurrent_payments_in_one_upline_are_all_counted():
    # Given two sellers under the same head, each with unpaid orders
    head = DistributorFactory()
    sellers = [DistributorFactory(parent=head), DistributorFactory(parent=head)]
    head.refresh_from_db()
    product = ProductFactory()
    orders = [place_order(seller, amount=Decimal("3.00"), product=product) for seller in sellers for _ in range(4)]
    errors = []

    def pay_all(batch):
        try:
            for order in batch:
                pay(order)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    # When both are paid at the same time, in parallel transactions
    threads = [threading.Thread(target=pay_all, args=(orders[n::2],)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then no payment failed and every one is in the head's team total
    assert errors == []
    assert selectors.team_sales(head) == {"orders": 8, "amount": Decimal("24.00")}
    assert_rollup_matches_orders()
