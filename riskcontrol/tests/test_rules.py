"""A test per rule with its action, through the same entry point checkout calls."""

from decimal import Decimal

import pytest

from distribution.tests.factories import DistributorFactory
from riskcontrol.models import (
    Action,
    RiskEvent,
    RiskRule,
    RiskSignal,
    RuleCode,
    SignalKind,
)
from riskcontrol.services.assessment import ALLOW, BLOCK, REVIEW, assess_checkout, assess_checkout_in_full
from riskcontrol.services.signals import record_distributor_signal
from riskcontrol.tests.factories import set_rule

pytestmark = pytest.mark.django_db


def checkout(product, **overrides):
    arguments = {
        "product": product,
        "quantity": 1,
        "contact": "buyer@example.com",
        "buyer_ip": "203.0.113.7",
        "amount": Decimal("100.00"),
        "device_id": "a1b2c3d4e5f60718",
    }
    arguments.update(overrides)
    return assess_checkout_in_full(**arguments)


def test_a_plain_checkout_is_allowed_and_recorded(product):
    verdict = assess_checkout(
        product=product,
        quantity=1,
        contact="a@example.com",
        buyer_ip="198.51.100.1",
        amount=Decimal(10),
    )

    assert verdict == ALLOW
    signal = RiskSignal.objects.get()
    assert signal.kind == SignalKind.CHECKOUT and signal.verdict == ALLOW
    assert signal.contact_mask == "a***@example.com"
    assert "a@example.com" not in signal.contact_index
    assert not RiskEvent.objects.exists()


def test_the_sixth_order_from_one_ip_in_ten_minutes_goes_to_review(product):
    for number in range(5):
        assert checkout(product, contact=f"b{number}@example.com", device_id=f"d{number:015d}").verdict == ALLOW

    result = checkout(product, contact="b9@example.com", device_id="e" * 16)

    assert result.verdict == REVIEW
    event = RiskEvent.objects.get(rule=RuleCode.IP_VELOCITY)
    assert event.action == Action.REVIEW and event.matched_on == "ip"
    assert "203.0.113.7" in event.explanation and "6" in event.explanation


def test_device_velocity_uses_the_device_whatever_the_ip(product):
    set_rule(RuleCode.DEVICE_VELOCITY, threshold=2, window_minutes=10, action=Action.BLOCK)
    checkout(product, buyer_ip="198.51.100.1", contact="c1@example.com")
    checkout(product, buyer_ip="198.51.100.2", contact="c2@example.com")

    result = checkout(product, buyer_ip="198.51.100.3", contact="c3@example.com")

    assert result.verdict == BLOCK
    assert [hit.rule.code for hit in result.hits] == [RuleCode.DEVICE_VELOCITY]


def test_blocked_attempts_do_not_count_as_orders(product):
    set_rule(RuleCode.DEVICE_VELOCITY, threshold=1, window_minutes=10, action=Action.BLOCK)
    checkout(product)
    assert checkout(product).verdict == BLOCK

    assert checkout(product).hits[0].explanation.count("2") >= 1  # still the second order, not the third


def test_repeat_purchase_of_the_same_product_by_the_same_buyer(product):
    set_rule(RuleCode.REPEAT_PURCHASE, threshold=2, window_minutes=1440, action=Action.REVIEW)
    checkout(product, buyer_ip="198.51.100.1", device_id="1" * 16)
    checkout(product, buyer_ip="198.51.100.2", device_id="2" * 16)

    result = checkout(
        product,
        buyer_ip="198.51.100.3",
        device_id="3" * 16,
        contact=" Buyer@Example.com ",
    )

    assert result.verdict == REVIEW
    assert result.hits[0].rule.code == RuleCode.REPEAT_PURCHASE
    assert "b***@example.com" in result.hits[0].explanation


def test_an_order_above_the_per_order_limit_is_blocked(product):
    result = checkout(product, amount=Decimal("5000.01"))

    assert result.verdict == BLOCK
    assert result.hits[0].rule.code == RuleCode.ORDER_AMOUNT_LIMIT
    assert "5000" in result.hits[0].explanation


def test_exactly_the_per_order_limit_is_allowed(product):
    assert checkout(product, amount=Decimal("5000.00")).verdict == ALLOW


def test_the_buyer_daily_limit_counts_today_across_devices(product):
    set_rule(
        RuleCode.REPEAT_PURCHASE,
        is_enabled=False,
        threshold=3,
        window_minutes=1440,
        action=Action.REVIEW,
    )
    verdicts = [
        checkout(
            product,
            amount=Decimal(4500),
            buyer_ip=f"198.51.100.{number}",
            device_id=f"{number}" * 16,
        ).verdict
        for number in range(4)
    ]

    result = checkout(product, amount=Decimal(2500), buyer_ip="198.51.100.9", device_id="9" * 16)

    assert verdicts == [ALLOW] * 4
    assert result.verdict == BLOCK
    assert [hit.rule.code for hit in result.hits] == [RuleCode.BUYER_DAILY_LIMIT]
    assert "20500" in result.hits[0].explanation


def test_the_distributor_daily_limit_puts_orders_on_review(product):
    distributor = DistributorFactory()
    set_rule(
        RuleCode.DISTRIBUTOR_DAILY_LIMIT,
        threshold=Decimal(300),
        window_minutes=0,
        action=Action.REVIEW,
    )
    for number in range(3):
        checkout(
            product,
            amount=Decimal(100),
            distributor_id=distributor.pk,
            contact=f"d{number}@example.com",
            buyer_ip=f"198.51.100.{number}",
            device_id=f"{number}" * 16,
        )

    result = checkout(
        product,
        amount=Decimal(100),
        distributor_id=distributor.pk,
        contact="x@example.com",
        buyer_ip="198.51.100.50",
        device_id="f" * 16,
    )

    assert result.verdict == REVIEW
    assert result.hits[0].rule.code == RuleCode.DISTRIBUTOR_DAILY_LIMIT


def test_a_buyer_on_the_distributors_device_is_self_referral(product):
    distributor = DistributorFactory()
    record_distributor_signal(
        kind=SignalKind.LOGIN,
        distributor_id=distributor.pk,
        ip="192.0.2.1",
        device_id="c0ffee" * 3,
    )

    result = checkout(product, distributor_id=distributor.pk, device_id="c0ffee" * 3)

    assert result.verdict == REVIEW
    hit = result.hits[0]
    assert hit.rule.code == RuleCode.SELF_REFERRAL and hit.matched_on == "device"
    assert f"#{distributor.pk}" in hit.explanation


def test_self_referral_reaches_the_upline_by_contact(product):
    parent = DistributorFactory()
    child = DistributorFactory(parent=parent)
    record_distributor_signal(kind=SignalKind.SIGNUP, distributor_id=parent.pk, contacts=("13800000001",))

    result = checkout(product, distributor_id=child.pk, contact="13800000001")

    assert result.verdict == REVIEW
    assert result.hits[0].matched_on == "contact"
    assert "其上级" in result.hits[0].explanation


@pytest.mark.parametrize(("distance", "is_seen"), [(0, True), (1, True), (2, True), (3, False), (4, False)])
def test_self_referral_without_a_snapshot_sees_the_seller_and_two_above_no_more(product, distance, is_seen):
    """The people an order can pay: the seller (level 1) and at most two ancestors. The
    fourth person up is not the seller's upline for any rule."""
    nodes = [DistributorFactory()]
    for _ in range(4):
        nodes.append(DistributorFactory(parent=nodes[-1]))
    seller = nodes[-1]
    watched = nodes[-1 - distance]
    record_distributor_signal(kind=SignalKind.SIGNUP, distributor_id=watched.pk, contacts=("13800000001",))

    result = checkout(product, distributor_id=seller.pk, contact="13800000001")

    assert (result.verdict == REVIEW) is is_seen


def test_another_distributors_signals_are_not_self_referral(product):
    stranger = DistributorFactory()
    distributor = DistributorFactory()
    record_distributor_signal(kind=SignalKind.LOGIN, distributor_id=stranger.pk, device_id="c0ffee" * 3)

    assert checkout(product, distributor_id=distributor.pk, device_id="c0ffee" * 3).verdict == ALLOW


def test_the_blacklist_action_adds_the_signal_and_blocks(product):
    from riskcontrol.models import BlacklistEntry

    set_rule(
        RuleCode.ORDER_AMOUNT_LIMIT,
        threshold=Decimal(50),
        window_minutes=0,
        action=Action.BLACKLIST,
    )

    result = checkout(product, amount=Decimal(60))

    assert result.verdict == BLOCK
    entry = BlacklistEntry.objects.get()
    assert entry.kind == "contact" and entry.expires_at is not None
    assert checkout(product, amount=Decimal(1)).verdict == BLOCK


def test_the_freeze_action_records_the_intent_and_reviews(product, monkeypatch):
    distributor = DistributorFactory()
    set_rule(
        RuleCode.DISTRIBUTOR_DAILY_LIMIT,
        threshold=Decimal(50),
        window_minutes=0,
        action=Action.FREEZE_COMMISSIONS,
    )
    frozen = []
    from riskcontrol.services import assessment as services

    monkeypatch.setattr(
        services,
        "freeze_distributor_commissions",
        lambda **kwargs: frozen.append(kwargs) or "已冻结分销商佣金",
    )

    result = checkout(product, amount=Decimal(60), distributor_id=distributor.pk)

    assert result.verdict == REVIEW
    assert frozen[0]["distributor_id"] == distributor.pk
    assert RiskEvent.objects.get().outcome == "已冻结分销商佣金"


def test_freeze_without_the_commissions_service_is_recorded_as_intent(product):
    from riskcontrol.services.assessment import freeze_distributor_commissions

    outcome = freeze_distributor_commissions(distributor_id=DistributorFactory().pk, reason="test")

    assert outcome  # either frozen (commissions merged) or the intent recorded, never an exception


def test_a_disabled_rule_does_not_fire(product):
    set_rule(
        RuleCode.ORDER_AMOUNT_LIMIT,
        is_enabled=False,
        threshold=Decimal(5000),
        window_minutes=0,
        action=Action.BLOCK,
    )

    assert checkout(product, amount=Decimal(9000), contact="rich@example.com").verdict == ALLOW


def test_the_default_rules_are_seeded_for_the_merchant():
    assert set(RiskRule.objects.values_list("code", flat=True)) >= {
        RuleCode.IP_VELOCITY,
        RuleCode.SELF_REFERRAL,
        RuleCode.ORDER_AMOUNT_LIMIT,
        RuleCode.FAKE_RECRUITING,
    }
    assert RiskRule.objects.get(code=RuleCode.ORDER_AMOUNT_LIMIT).threshold == Decimal(5000)
    assert RiskRule.objects.get(code=RuleCode.BUYER_DAILY_LIMIT).threshold == Decimal(20000)


def test_an_engine_failure_allows_the_checkout(product, monkeypatch):
    from riskcontrol.services import assessment as services

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "assess_checkout_in_full", broken)

    assert assess_checkout(product=product, quantity=1, contact="a@b.cn", buyer_ip=None, amount=1) == ALLOW


def test_a_distributor_logging_in_leaves_the_signals_self_referral_compares(client, product):
    distributor = DistributorFactory()
    distributor.user.email = "agent@example.com"
    distributor.user.save()

    client.post(
        "/agent/login/",
        {"username": distributor.user.username, "password": "kamen-test-pass"},
        REMOTE_ADDR="192.0.2.44",
    )
    device_id = RiskSignal.objects.filter(kind=SignalKind.LOGIN).values_list("device_id", flat=True).first()
    result = checkout(
        product,
        distributor_id=distributor.pk,
        contact="agent@example.com",
        buyer_ip="198.51.100.77",
        device_id="9" * 16,
    )

    assert RiskSignal.objects.filter(kind=SignalKind.LOGIN, distributor_id=distributor.pk, ip="192.0.2.44").count() == 2
    assert device_id
    assert result.verdict == REVIEW and result.hits[0].matched_on == "contact"


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_fast_write_path_stores_every_signal(product):
    set_rule(RuleCode.IP_VELOCITY, threshold=1, window_minutes=10, action=Action.REVIEW)

    first = checkout(product, contact="t1@example.com", device_id="1" * 16)
    second = checkout(product, contact="t2@example.com", device_id="2" * 16)

    assert (first.verdict, second.verdict) == (ALLOW, REVIEW)
    assert RiskSignal.objects.filter(kind=SignalKind.CHECKOUT).count() == 2
    assert RiskEvent.objects.get().signal_id == second.signal.pk


@pytest.mark.django_db(transaction=True)
def test_the_check_survives_a_session_that_lost_its_prepared_statements(product):
    from django.db import connection

    from riskcontrol.services.blacklist import add_to_blacklist

    assert checkout(product, buyer_ip="192.0.2.44").verdict == ALLOW
    add_to_blacklist(kind="ip", value="192.0.2.0/24", reason="test", actor=None)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    result = checkout(product, buyer_ip="192.0.2.44", contact="other@example.com")

    assert result.verdict == BLOCK
    assert result.hits[0].rule.code == RuleCode.BLACKLIST


def test_the_check_reads_the_buyers_own_signals_not_every_checkout_of_the_day(product, monkeypatch):
    """Its statement is prepared once per connection and settles on a generic plan. Planned on a small
    table that plan once chose the (kind, created_at) index, and every checkout then read all
    of the day's checkouts: it grew slower through the day. No index on kind may serve it."""
    import riskcontrol.services.assessment as services
    from kamen.tests.plans import explain

    captured = []
    original = services._fetch_row
    monkeypatch.setattr(
        services, "_fetch_row", lambda sql, params: captured.append((sql, params)) or original(sql, params)
    )
    for number in range(3):
        checkout(product, contact=f"buyer{number}@example.com", buyer_ip=None, device_id="")
    sql, params = captured[-1]
    plan = "\n".join(row[0] for row in explain(sql, params, generic=True))
    assert "risk_signal_kind_idx" not in plan
    assert "risk_signal_contact_idx" in plan


def test_the_check_of_an_attributed_order_reads_indexes_even_planned_on_an_empty_table(product, monkeypatch):
    """A connection settles on its generic plan in its first checkouts; on a fresh shop the
    table is empty then, and a plan reading the whole table is kept as it grows: every order
    of that connection then read every checkout so far. The buyer's arm and the chain's arm
    (self-referral) must each be an index look-up whatever the table's size (here: empty,
    never analysed)."""
    import riskcontrol.services.assessment as services
    from kamen.tests.plans import explain

    seller = DistributorFactory()
    captured = []
    original = services._fetch_row
    monkeypatch.setattr(
        services, "_fetch_row", lambda sql, params: captured.append((sql, params)) or original(sql, params)
    )
    checkout(
        product,
        contact="first@example.com",
        buyer_ip=None,
        device_id="",
        distributor_id=seller.pk,
        attribution={"chain": [seller.pk + 1, seller.pk + 2]},
    )
    sql, params = captured[-1]
    assert "self_contact" in sql
    plan = "\n".join(row[0] for row in explain(sql, params, generic=True))
    assert "Seq Scan on riskcontrol_risksignal" not in plan, plan
    assert plan.count("Index Scan using risk_signal_") == 2, plan  # the buyer's arm, the chain's


def test_the_checks_figures_count_only_this_buyers_recent_unblocked_checkouts_and_the_chains_signals(product):
    """Each figure of the one statement, against signals placed around its edges: a window,
    a blocked checkout, another product, another buyer, a signal outside the chain."""
    from datetime import timedelta

    from django.utils import timezone

    from riskcontrol.rules import active_rules
    from riskcontrol.services.assessment import _recent_figures
    from riskcontrol.services.signals import contact_index

    set_rule(RuleCode.IP_VELOCITY, window_minutes=10)
    set_rule(RuleCode.DEVICE_VELOCITY, window_minutes=10)
    set_rule(RuleCode.REPEAT_PURCHASE, window_minutes=60)
    now = timezone.now()
    buyer, other = contact_index("buyer@example.com"), contact_index("other@example.com")
    seller, outsider = DistributorFactory(), DistributorFactory()

    def signal(minutes_ago, *, kind=SignalKind.CHECKOUT, **fields):
        values = {"ip": "203.0.113.7", "device_id": "dev-1", "contact_index": buyer, "product_id": product.pk}
        row = RiskSignal.objects.create(kind=kind, **(values | fields))
        RiskSignal.objects.filter(pk=row.pk).update(created_at=now - timedelta(minutes=minutes_ago))

    signal(1, amount=Decimal("10.00"))  # every buyer figure
    signal(2, amount=Decimal("7.00"), verdict="block")  # blocked: none
    signal(3, amount=Decimal("5.00"), product_id=product.pk + 1000)  # another product: no repeat
    signal(30, amount=Decimal("20.00"))  # outside the IP and device windows, inside the repeat one
    signal(4, contact_index=other, device_id="dev-2", amount=Decimal("99.00"))  # same IP only
    signal(5, kind=SignalKind.SIGNUP, distributor_id=seller.pk, ip="198.51.100.9", device_id="dev-9")
    signal(5, kind=SignalKind.LOGIN, distributor_id=outsider.pk, device_id="dev-1", contact_index=other)
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if now - timedelta(minutes=31) < day_start:
        pytest.skip("the signals would straddle midnight")

    figures = _recent_figures(
        rules=active_rules(),
        ip="203.0.113.7",
        device_id="dev-1",
        contact_idx=buyer,
        payment_idx="",
        product_id=product.pk,
        distributor_id=seller.pk,
        chain_ids=[seller.pk],
        now=now,
    )

    assert figures["ip_count"] == 3  # 1, 3 and the other buyer's 4 minutes ago
    assert figures["device_count"] == 2  # 1 and 3
    assert figures["repeat_count"] == 2  # 1 and 30 (same product, within the hour)
    assert figures["buyer_today"] == Decimal("35.00")  # 10 + 5 + 20
    assert figures["self_contact"] == seller.pk  # the seller signed up with the buyer's contact
    assert figures["self_ip"] is None and figures["self_device"] is None  # the outsider's login is not the chain
    assert figures["blacklist_id"] is None
