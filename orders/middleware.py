"""Referral attribution: ``?ref=CODE&ch=channel`` becomes a signed cookie for a window.

Checkout reads the cookie and snapshots the attribution on the order (distribution fills in
who the code belongs to). The latest link a buyer followed wins.
"""

import re

from django.conf import settings

COOKIE_NAME = "kamen_ref"
COOKIE_SALT = "orders.referral"
CHANNELS = ("wechat", "douyin", "xiaohongshu", "other")
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def referral_from_request(request) -> dict | None:
    raw = request.get_signed_cookie(COOKIE_NAME, default=None, salt=COOKIE_SALT, max_age=settings.REFERRAL_COOKIE_DAYS * 86400)
    if not raw:
        return None
    code, _sep, channel = raw.partition("|")
    return {"code": code, "channel": channel or "other"} if CODE_RE.fullmatch(code) else None


class ReferralMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        code = request.GET.get("ref", "")
        response = self.get_response(request)
        if code and CODE_RE.fullmatch(code):
            channel = request.GET.get("ch", "other")
            channel = channel if channel in CHANNELS else "other"
            response.set_signed_cookie(
                COOKIE_NAME,
                f"{code}|{channel}",
                salt=COOKIE_SALT,
                max_age=settings.REFERRAL_COOKIE_DAYS * 86400,
                httponly=True,
                samesite="Lax",
            )
        return response


class EmbeddedHousekeepingMiddleware:
    """The embedded mode has no Celery beat: let shop traffic run the order pipeline's scheduled
    jobs (expiry, sweeper, payment queries) in a background thread, at most once a minute."""

    INTERVAL_SECONDS = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        from django.core.cache import cache

        if settings.BACKGROUND_IN_PROCESS and cache.add("orders:housekeeping", 1, self.INTERVAL_SECONDS):
            from kamen.background import _run_in_thread

            _run_in_thread(run_housekeeping, (), {})
        return response


def run_housekeeping() -> None:
    from orders.services import (
        expire_unpaid_orders,
        query_pending_payments,
        sweep_stalled_orders,
    )

    expire_unpaid_orders()
    query_pending_payments()
    sweep_stalled_orders()
