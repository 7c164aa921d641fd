"""Hooks into Django's events: distributors' log-ins become signals, rule edits reach the rule
cache, a password log-in asks for the second factor again."""

import logging

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(user_logged_in, dispatch_uid="riskcontrol.distributor_login")
def record_distributor_login(sender, request, user, **kwargs):
    from distribution.models import Distributor

    from .fingerprint import device_from_request
    from .models import SignalKind
    from .services.signals import record_distributor_signal

    distributor = (
        Distributor.objects.filter(user_id=user.pk).values("pk", "joined_at").first()
    )
    if distributor is None or request is None:
        return
    device = device_from_request(request)
    record_distributor_signal(
        kind=SignalKind.LOGIN,
        distributor_id=distributor["pk"],
        user_id=user.pk,
        ip=device.ip,
        device_id=device.device_id,
        device_hash=device.device_hash,
        contacts=tuple(
            value for value in (getattr(user, "phone", ""), user.email) if value
        ),
    )


def _on_rule_change(sender, **kwargs):
    from .rules import clear_rule_cache

    clear_rule_cache()


post_save.connect(
    _on_rule_change,
    sender="riskcontrol.RiskRule",
    dispatch_uid="riskcontrol.rule_saved",
)
post_delete.connect(
    _on_rule_change,
    sender="riskcontrol.RiskRule",
    dispatch_uid="riskcontrol.rule_deleted",
)


@receiver(user_logged_in, dispatch_uid="riskcontrol.two_factor_reset")
def require_two_factor_again(sender, request, user, **kwargs):
    """A password log-in starts without the second factor, whatever the session held."""
    from kamen.security import SESSION_KEY

    if request is not None and hasattr(request, "session"):
        request.session.pop(SESSION_KEY, None)
