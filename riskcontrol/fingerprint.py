"""The device a request comes from: a first-party cookie plus a stable hash of the browser.

``DeviceMiddleware`` gives every browser a random device id in a long-lived, HttpOnly,
first-party cookie (signed, so a client cannot pick someone else's id by typing it) and hashes
the user agent and accept-language into a fingerprint that survives clearing cookies. Both are
kept on the request and in a context variable, so ``assess_checkout`` finds them without the
checkout code passing the request through.
"""

import contextvars
import hashlib
import secrets
from dataclasses import dataclass

from django.core import signing

from kamen.client_ip import client_ip

COOKIE_NAME = "kdid"
COOKIE_SALT = "riskcontrol.device"
COOKIE_MAX_AGE = 60 * 60 * 24 * 365 * 2


@dataclass(frozen=True)
class Device:
    device_id: str = ""
    device_hash: str = ""
    ip: str | None = None


_current: contextvars.ContextVar[Device | None] = contextvars.ContextVar(
    "kamen_device", default=None
)


def browser_hash(user_agent: str, accept_language: str) -> str:
    """A stable hash of what the browser says about itself (not unique alone; a second signal)."""
    material = f"{(user_agent or '')[:512]}|{(accept_language or '')[:128]}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def device_from_request(request) -> Device:
    device = getattr(request, "kamen_device", None)
    if device is not None:
        return device
    raw = request.COOKIES.get(COOKIE_NAME, "")
    try:
        device_id = (
            signing.get_cookie_signer(salt=COOKIE_SALT).unsign(raw) if raw else ""
        )
    except signing.BadSignature:
        device_id = ""
    return Device(
        device_id=device_id,
        device_hash=browser_hash(
            request.META.get("HTTP_USER_AGENT", ""),
            request.META.get("HTTP_ACCEPT_LANGUAGE", ""),
        ),
        ip=client_ip(request),
    )


def current_device() -> Device | None:
    """The device of the request being served in this thread/task, if any."""
    return _current.get()


class DeviceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        device = device_from_request(request)
        is_new = not device.device_id
        if is_new:
            device = Device(
                device_id=secrets.token_hex(16),
                device_hash=device.device_hash,
                ip=device.ip,
            )
        request.kamen_device = device
        token = _current.set(device)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        if is_new:
            response.set_cookie(
                COOKIE_NAME,
                signing.get_cookie_signer(salt=COOKIE_SALT).sign(device.device_id),
                max_age=COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response

    def process_exception(self, request, exception):
        """A browser refused for guessing (``riskcontrol.guessing``) gets a clear 429 page."""
        from .guessing import GuessingRefused

        if not isinstance(exception, GuessingRefused):
            return None
        from django.shortcuts import render

        return render(
            request, "riskcontrol/locked.html", {"message": exception.message}, status=429
        )
