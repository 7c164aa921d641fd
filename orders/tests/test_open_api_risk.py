"""The docking risk policy (ADR 0019): a site's API orders all share its contact and IP, so the
buyer rules of checkout (IP velocity, repeat purchase, buyer day total) would hold a busy site
for review. They are judged per site instead: a busy site's orders go through; a burst above
the site's limit is held; the blacklist and the amount rule still apply. On PostgreSQL, so the
one-statement path of the risk check is what is tested."""

from decimal import Decimal

import pytest

from orders.models import Order
from riskcontrol.services.blacklist import add_to_blacklist
from riskcontrol.models import BlacklistKind, RiskEvent, RuleCode
from riskcontrol.services.assessment import assess_checkout_in_full

from .docking_support import docked_site, owner, signed_call
from .factories import add_keys, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return owner(django_user_model)


def _place(client, docked, product, number, **extra):
    payload = {"product_id": product.pk, "quantity": 1, "client_order_no": f"R-{number}"}
    return signed_call(client, docked, "POST", "/api/v1/orders", payload, **extra)


def _held(docked):
    orders = Order.objects.filter(attribution__docking_site_id=docked.site.pk)
    return [order.order_no for order in orders if (order.attribution or {}).get("risk") == "review"]


def test_a_busy_sites_64_orders_of_one_product_are_not_held(client, staff):
    product = make_product(price="10.00", cost_price=Decimal("5.00"))
    add_keys(product, 64, prefix="BUSY")
    docked = docked_site(staff=staff, prepaid="1000.00")

    statuses = [_place(client, docked, product, number).status_code for number in range(64)]

    assert statuses == [201] * 64
    assert Order.objects.filter(attribution__docking_site_id=docked.site.pk).count() == 64
    assert _held(docked) == []
    assert not RiskEvent.objects.filter(rule__in=[RuleCode.IP_VELOCITY, RuleCode.REPEAT_PURCHASE]).exists()


def test_a_burst_above_the_sites_limit_is_held_for_review_and_other_sites_are_not(client, staff):
    product = make_product(price="10.00", cost_price=Decimal("5.00"))
    add_keys(product, 20, prefix="BURST")
    docked = docked_site(staff=staff, prepaid="1000.00")
    type(docked.site).objects.filter(pk=docked.site.pk).update(order_limit=5)
    other = docked_site(staff=staff, prepaid="1000.00", name="另一站")

    for number in range(7):
        assert _place(client, docked, product, number).status_code == 201
    for number in range(3):
        assert _place(client, other, product, 100 + number).status_code == 201

    held = _held(docked)
    assert len(held) == 2  # the 6th and 7th within the window
    assert _held(other) == []
    events = RiskEvent.objects.filter(rule=RuleCode.DOCKING_VELOCITY)
    assert events.count() == 2
    assert f"对接商户 #{docked.site.pk}" in events.first().explanation


def test_without_a_limit_of_its_own_the_site_is_bound_by_the_docking_rule(staff):
    product = make_product(price="10.00")
    docked = docked_site(staff=staff)
    from riskcontrol.models import RiskRule
    from riskcontrol.rules import clear_rule_cache

    RiskRule.objects.update_or_create(
        code=RuleCode.DOCKING_VELOCITY,
        defaults={"is_enabled": True, "threshold": Decimal(2), "window_minutes": 10, "action": "review"},
    )
    clear_rule_cache()

    def assess():
        return assess_checkout_in_full(
            product=product, quantity=1, contact="dock@example.com", buyer_ip="10.1.2.3",
            amount=Decimal("10.00"), docking_site_id=docked.site.pk,
        ).verdict  # fmt: skip

    try:
        assert [assess() for _ in range(3)] == ["allow", "allow", "review"]
    finally:
        clear_rule_cache()


def test_the_blacklist_still_blocks_a_sites_orders(client, staff):
    product = make_product(price="10.00", cost_price=Decimal("5.00"))
    add_keys(product, 3, prefix="BL")
    docked = docked_site(staff=staff, prepaid="1000.00")
    add_to_blacklist(kind=BlacklistKind.IP, value="203.0.113.9", reason="test", actor=staff)

    refused = _place(client, docked, product, 1, REMOTE_ADDR="203.0.113.9")
    allowed = _place(client, docked, product, 2, REMOTE_ADDR="198.51.100.7")

    assert refused.status_code >= 400 and allowed.status_code == 201
    assert Order.objects.filter(attribution__docking_site_id=docked.site.pk).count() == 1


def test_the_amount_rule_still_blocks_a_sites_order(client, staff):
    product = make_product(price="9000.00", cost_price=Decimal("5.00"))
    add_keys(product, 1, prefix="AMT")
    docked = docked_site(staff=staff, prepaid="20000.00", discount_bp=10000)

    response = _place(client, docked, product, 1)

    assert response.status_code >= 400, response.content
    assert not Order.objects.filter(attribution__docking_site_id=docked.site.pk).exists()


def test_a_shop_buyer_still_meets_the_buyer_rules(staff):
    product = make_product(price="10.00")

    verdicts = [
        assess_checkout_in_full(
            product=product, quantity=1, contact="buyer@example.com", buyer_ip="10.9.9.9", amount=Decimal("10.00")
        ).verdict
        for _ in range(4)
    ]

    assert verdicts[-1] == "review"  # repeat_purchase: more than 3 of one product in a day
