"""Audit of staff log-ins; other audit rows are written by the services that change things."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def audit_staff_login(sender, request, user, **kwargs):
    if not user.is_staff:
        return
    from .audit import record_audit

    record_audit(actor=user, action="auth.login", target=user, request=request)
