"""Risk staff's console pages render for the risk role, escape what people typed, and stay
closed to roles without the permission."""

import pytest
from django.urls import reverse

from riskcontrol.services.blacklist import add_to_blacklist
from riskcontrol.models import BlacklistKind

pytestmark = pytest.mark.django_db

PAGES = [
    "admin:riskcontrol_riskrule_changelist",
    "admin:riskcontrol_riskevent_changelist",
    "admin:riskcontrol_reviewcase_changelist",
    "admin:riskcontrol_blacklistentry_changelist",
    "admin:riskcontrol_blacklistentry_add",
    "admin:riskcontrol_blacklistentry_import",
    "admin:riskcontrol_realnameverification_changelist",
]


@pytest.mark.parametrize("name", PAGES)
def test_the_risk_role_sees_every_risk_page(client, risk_staff, name):
    client.force_login(risk_staff)

    assert client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "admin:riskcontrol_reviewcase_changelist",
        "admin:riskcontrol_blacklistentry_changelist",
    ],
)
def test_an_operator_does_not(client, staff_user, name):
    client.force_login(staff_user)

    assert client.get(reverse(name)).status_code == 403


def test_a_reason_with_markup_is_shown_as_text(client, risk_staff):
    add_to_blacklist(
        kind=BlacklistKind.IP,
        value="192.0.2.1",
        reason='<img src=x onerror="alert(1)">',
        actor=risk_staff,
    )
    client.force_login(risk_staff)

    body = client.get(
        reverse("admin:riskcontrol_blacklistentry_changelist")
    ).content.decode()

    assert '<img src=x onerror="alert(1)">' not in body
    assert "&lt;img src=x" in body


def test_a_rule_change_is_audited_and_reaches_the_checkout(client, risk_staff, product):
    from kamen.models import AuditLogEntry
    from riskcontrol.models import RiskRule, RuleCode
    from riskcontrol.services.assessment import assess_checkout

    rule = RiskRule.objects.get(code=RuleCode.ORDER_AMOUNT_LIMIT)
    client.force_login(risk_staff)
    response = client.post(
        reverse("admin:riskcontrol_riskrule_change", args=[rule.pk]),
        {
            "is_enabled": "on",
            "threshold": "50",
            "window_minutes": "0",
            "action": "block",
            "note": "",
        },
    )

    assert response.status_code == 302
    assert AuditLogEntry.objects.filter(action="riskcontrol.rule_changed").exists()
    assert (
        assess_checkout(
            product=product, quantity=1, contact="a@b.cn", buyer_ip=None, amount=60
        )
        == "block"
    )
