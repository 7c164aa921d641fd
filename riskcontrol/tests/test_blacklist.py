"""Blacklist: networks, expiry, every kind, CSV round trip, and a clear message at checkout."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from riskcontrol.services.blacklist import add_to_blacklist, export_blacklist_csv, import_blacklist_csv
from riskcontrol.models import BlacklistEntry, BlacklistKind, RuleCode
from riskcontrol.services.assessment import BLOCK, assess_checkout_in_full

pytestmark = pytest.mark.django_db


def checkout(product, **overrides):
    arguments = {
        "product": product,
        "quantity": 1,
        "contact": "buyer@example.com",
        "buyer_ip": "203.0.113.7",
        "amount": Decimal("10.00"),
        "device_id": "a1b2c3d4e5f60718",
    }
    arguments.update(overrides)
    return assess_checkout_in_full(**arguments)


def test_an_address_inside_a_blacklisted_network_is_blocked(product, risk_staff):
    add_to_blacklist(
        kind=BlacklistKind.IP,
        value="203.0.113.0/24",
        reason="刷单网段",
        actor=risk_staff,
    )

    inside = checkout(product, buyer_ip="203.0.113.200")
    outside = checkout(product, buyer_ip="203.0.114.1")

    assert inside.verdict == BLOCK
    assert inside.hits[0].rule.code == RuleCode.BLACKLIST
    assert "203.0.113.0/24" in inside.hits[0].explanation
    assert outside.verdict == "allow"


def test_an_ipv6_network_matches_its_addresses(product, risk_staff):
    add_to_blacklist(
        kind=BlacklistKind.IP, value="2001:db8::/32", reason="x", actor=risk_staff
    )

    assert checkout(product, buyer_ip="2001:db8::1").verdict == BLOCK
    assert checkout(product, buyer_ip="2001:db9::1").verdict == "allow"


def test_an_expired_entry_no_longer_blocks(product, risk_staff):
    entry = add_to_blacklist(
        kind=BlacklistKind.CONTACT,
        value="buyer@example.com",
        reason="x",
        actor=risk_staff,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert checkout(product).verdict == BLOCK

    BlacklistEntry.objects.filter(pk=entry.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert checkout(product).verdict == "allow"


@pytest.mark.parametrize(
    ("kind", "value", "override"),
    [
        (BlacklistKind.DEVICE, "a1b2c3d4e5f60718", {}),
        (BlacklistKind.CONTACT, "BUYER@example.com", {}),
        (
            BlacklistKind.PAYMENT_ACCOUNT,
            "6222000011112222",
            {"payment_account": "6222 0000 1111 2222"},
        ),
    ],
)
def test_each_buyer_kind_blocks(product, risk_staff, kind, value, override):
    add_to_blacklist(kind=kind, value=value, reason="x", actor=risk_staff)

    assert checkout(product, **override).verdict == BLOCK


def test_a_blacklisted_distributor_blocks_its_attributed_orders(product, risk_staff):
    from distribution.tests.factories import DistributorFactory

    distributor = DistributorFactory()
    add_to_blacklist(
        kind=BlacklistKind.DISTRIBUTOR,
        value=str(distributor.pk),
        reason="x",
        actor=risk_staff,
    )

    assert checkout(product, distributor_id=distributor.pk).verdict == BLOCK


def test_an_id_number_is_stored_as_a_blind_index_only(risk_staff):
    entry = add_to_blacklist(
        kind=BlacklistKind.ID_NUMBER,
        value="11010519491231002X",
        reason="x",
        actor=risk_staff,
    )

    assert "11010519491231002X" not in str(
        BlacklistEntry.objects.filter(pk=entry.pk).values().first()
    )
    assert entry.display_value == "110***********002X"


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (BlacklistKind.IP, "300.1.1.1", "不是有效的 IP"),
        (BlacklistKind.ID_NUMBER, "110105194912310021", "校验位"),
        (BlacklistKind.CONTACT, "138****1234", "打码"),
        (BlacklistKind.DEVICE, "<script>", "十六进制"),
        ("nonsense", "x", "不支持"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(risk_staff, kind, value, message):
    with pytest.raises(ValidationError) as error:
        add_to_blacklist(kind=kind, value=value, reason="x", actor=risk_staff)

    assert message in " ".join(error.value.messages)
    assert not BlacklistEntry.objects.exists()


def test_csv_import_is_all_or_nothing_and_export_shows_masks(risk_staff):
    good = "kind,value,reason,expires_at\nip,10.0.0.0/8,内网,\ncontact,13812345678,刷单,2099-12-31\n"
    bad = good + "ip,not-an-ip,x,\n"

    added_bad, errors = import_blacklist_csv(content=bad.encode(), actor=risk_staff)
    added, no_errors = import_blacklist_csv(content=good.encode(), actor=risk_staff)
    exported = export_blacklist_csv()

    assert added_bad == 0 and "第 3 行" in errors[0]
    assert added == 2 and no_errors == []
    assert "10.0.0.0/8" in exported and "138****5678" in exported
    assert "13812345678" not in exported


def test_the_blacklist_is_audited(risk_staff):
    from kamen.models import AuditLogEntry

    add_to_blacklist(
        kind=BlacklistKind.IP, value="198.51.100.9", reason="x", actor=risk_staff
    )

    assert AuditLogEntry.objects.filter(
        action="riskcontrol.blacklisted", actor=risk_staff
    ).exists()


def test_a_blacklisted_buyer_gets_a_clear_message_and_a_limit_says_the_limit(
    product, risk_staff
):
    add_to_blacklist(
        kind=BlacklistKind.CONTACT,
        value="buyer@example.com",
        reason="x",
        actor=risk_staff,
    )

    blocked = checkout(product)
    over_limit = checkout(product, contact="other@example.com", amount=Decimal(6000))

    assert blocked.buyer_message == "您已被限制下单（黑名单），如有疑问请联系客服"
    assert (
        "5000" in over_limit.buyer_message and "黑名单" not in over_limit.buyer_message
    )
