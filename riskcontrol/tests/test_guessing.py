"""Guessing at the buyer look-up and at order / card-key pages: a test per rule and action,
through the real views (the device cookie, the IP, the 429 page)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.services.access import signed_order_token
from orders.tests.postsale_helpers import make_order
from riskcontrol.models import (
    Action,
    BlacklistEntry,
    BlacklistKind,
    RiskEvent,
    RiskSignal,
    RuleCode,
    SignalKind,
)
from riskcontrol.services.assessment import BLOCK, assess_checkout
from riskcontrol.tests.factories import set_rule

pytestmark = pytest.mark.django_db
LOOKUP = "/query/"
GUESSER = "198.51.100.66"
REFUSED = "失败次数过多"


def failed_lookup(client, number, ip=GUESSER):
    return client.post(
        LOOKUP,
        {"mode": "order_no", "identifier": f"K26112300009{number:05d}", "password": "guess-1234"},
        REMOTE_ADDR=ip,
    )


def test_failed_lookups_across_order_numbers_are_flagged_once_with_the_reason(client):
    set_rule(RuleCode.LOOKUP_GUESSING, threshold=3, window_minutes=30, action=Action.REVIEW)

    statuses = [failed_lookup(client, number).status_code for number in range(5)]

    assert statuses == [400] * 5  # flagged only: the guesser sees the usual error
    # Once per window for the IP and once for the browser's device, not per failure.
    assert sorted(RiskEvent.objects.values_list("matched_on", flat=True)) == ["device", "ip"]
    event = RiskEvent.objects.get(rule=RuleCode.LOOKUP_GUESSING, matched_on="ip")
    assert event.action == Action.REVIEW and event.matched_on == "ip"
    assert GUESSER in event.explanation
    assert "4 次" in event.explanation and "4 个订单号" in event.explanation
    assert event.signal.kind == SignalKind.LOOKUP_FAILED
    assert RiskSignal.objects.filter(kind=SignalKind.LOOKUP_FAILED).count() == 5


def test_the_block_action_refuses_the_ip_even_with_the_right_password(client):
    set_rule(RuleCode.LOOKUP_GUESSING, threshold=3, window_minutes=30, action=Action.BLOCK)
    order = make_order(password="right-password")
    for number in range(3):
        assert failed_lookup(client, number).status_code == 400

    fourth = failed_lookup(client, 3)
    right = client.post(
        LOOKUP,
        {"mode": "order_no", "identifier": order.order_no, "password": "right-password"},
        REMOTE_ADDR=GUESSER,
    )
    elsewhere = client.__class__().post(
        LOOKUP,
        {"mode": "order_no", "identifier": order.order_no, "password": "right-password"},
        REMOTE_ADDR="203.0.113.200",
    )

    assert fourth.status_code == 429 and REFUSED in fourth.content.decode()
    assert "30 分钟" in fourth.content.decode()
    assert right.status_code == 429 and order.order_no not in right.content.decode()
    assert elsewhere.status_code == 302  # another IP and device are not blocked
    event = RiskEvent.objects.get(rule=RuleCode.LOOKUP_GUESSING, matched_on="ip")
    assert event.action == Action.BLOCK and "30 分钟" in event.outcome


def test_the_blacklist_action_adds_an_expiring_ip_entry_that_also_stops_checkout(client, product):
    set_rule(RuleCode.LOOKUP_GUESSING, threshold=2, window_minutes=30, action=Action.BLACKLIST)

    responses = [failed_lookup(client, number) for number in range(4)]

    assert [r.status_code for r in responses] == [400, 400, 429, 429]
    entry = BlacklistEntry.objects.get(kind=BlacklistKind.IP)  # and the device (its own entry)
    assert entry.display_value == f"{GUESSER}/32"
    assert timezone.now() + timedelta(hours=23) < entry.expires_at < timezone.now() + timedelta(hours=25)
    assert "猜测查单" in entry.reason
    assert "黑名单" in responses[3].content.decode()
    verdict = assess_checkout(
        product=product, quantity=1, contact="x@example.com", buyer_ip=GUESSER, amount=10, device_id=""
    )
    assert verdict == BLOCK


def test_a_disabled_rule_records_nothing_and_refuses_nothing(client):
    set_rule(RuleCode.LOOKUP_GUESSING, is_enabled=False, threshold=1, window_minutes=30, action=Action.BLOCK)

    statuses = [failed_lookup(client, number).status_code for number in range(4)]

    assert statuses == [400] * 4
    assert not RiskSignal.objects.filter(kind=SignalKind.LOOKUP_FAILED).exists()
    assert not RiskEvent.objects.exists()


def test_forged_links_to_order_pages_are_flagged_with_the_signal(client):
    set_rule(RuleCode.PAGE_GUESSING, threshold=3, window_minutes=10, action=Action.REVIEW)
    orders = [make_order() for _n in range(4)]

    statuses = [
        client.get(f"/orders/{order.order_no}/?t=forged-token", REMOTE_ADDR=GUESSER).status_code
        for order in orders
    ]

    assert statuses == [404] * 4
    event = RiskEvent.objects.get(rule=RuleCode.PAGE_GUESSING, matched_on="ip")
    assert event.action == Action.REVIEW and event.order_no == orders[3].order_no
    assert "链接签名无效" in event.explanation and "4 个订单" in event.explanation


def test_a_valid_link_for_another_order_is_a_guess_and_blocks_the_device(client):
    set_rule(RuleCode.PAGE_GUESSING, threshold=2, window_minutes=15, action=Action.BLOCK)
    mine, *others = [make_order() for _n in range(4)]
    token = signed_order_token(mine)

    # The same browser (device cookie) from a different IP each time: the device is what repeats.
    statuses = [
        client.get(
            f"/query/orders/{other.order_no}/vouchers/?t={token}", REMOTE_ADDR=f"203.0.113.{n}"
        ).status_code
        for n, other in enumerate(others)
    ]

    assert statuses == [404, 404, 429]
    event = RiskEvent.objects.get(rule=RuleCode.PAGE_GUESSING)
    assert event.matched_on == "device" and "链接属于其他订单" in event.explanation
    assert "15 分钟" in event.outcome
    # Still refused from yet another IP while the block lasts; the owner of a link is not.
    assert client.get(f"/orders/{others[0].order_no}/", REMOTE_ADDR="203.0.113.99").status_code == 429
    assert client.get(f"/orders/{mine.order_no}/?t={token}", REMOTE_ADDR="203.0.113.99").status_code == 200


def test_the_blacklist_action_on_pages_blacklists_the_device_with_expiry(client):
    set_rule(RuleCode.PAGE_GUESSING, threshold=2, window_minutes=10, action=Action.BLACKLIST)
    orders = [make_order() for _n in range(3)]

    statuses = [
        client.get(f"/orders/{order.order_no}/status.json", REMOTE_ADDR=f"203.0.113.{n}").status_code
        for n, order in enumerate(orders)
    ]

    assert statuses == [404, 404, 429]
    entry = BlacklistEntry.objects.get(kind=BlacklistKind.DEVICE)
    assert entry.expires_at is not None
    assert entry.value_index == RiskSignal.objects.filter(kind=SignalKind.PAGE_DENIED).first().device_id
    assert "无链接且会话无授权" in entry.reason


def test_a_buyer_with_their_own_link_is_not_counted(client):
    set_rule(RuleCode.PAGE_GUESSING, threshold=1, window_minutes=10, action=Action.BLOCK)
    order = make_order()

    for _n in range(3):
        response = client.get(f"/orders/{order.order_no}/?t={signed_order_token(order)}", REMOTE_ADDR=GUESSER)
        assert response.status_code == 200

    assert not RiskSignal.objects.filter(kind=SignalKind.PAGE_DENIED).exists()
