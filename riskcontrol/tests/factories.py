"""Test factories for risk control: rules as configured by staff, and recorded signals."""

from decimal import Decimal

import factory

from riskcontrol.models import RiskRule, RiskSignal, SignalKind, Verdict


def set_rule(code, **fields) -> RiskRule:
    """Rule ``code`` as staff would set it (the migration made every rule; this changes it)."""
    rule, _created = RiskRule.objects.update_or_create(code=code, defaults=fields)
    return rule


class RiskSignalFactory(factory.django.DjangoModelFactory):
    """An allowed checkout from one buyer, as ``assess_checkout`` records it."""

    class Meta:
        model = RiskSignal

    kind = SignalKind.CHECKOUT
    ip = "203.0.113.7"
    device_id = factory.Sequence(lambda n: f"{n:032x}")
    contact_mask = "b***@example.com"
    amount = Decimal("100.00")
    quantity = 1
    verdict = Verdict.ALLOW
