"""Security middleware: headers (CSP and friends), request size, login brute-force protection,
rate limits, and the staff two-factor gate.

Counters live in the cache (Redis in real mode), keyed per IP and per username, so every web
process shares them. When the cache cannot be reached they fall back to counters in this
process (``counters``): each web process then limits on its own, looser by the number of
processes but never "allow everything", and no request fails because Redis blinked.
"""

import hashlib
import logging
import re
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.connection import ConnectionProxy
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from .client_ip import client_ip

logger = logging.getLogger(__name__)


# --- headers -----------------------------------------------------------------------------------
DEFAULT_CSP = {
    "default-src": ["'self'"],
    # Scripts only from our static files: no inline <script>, no on*= handlers (a test keeps
    # the templates that way), so an injected script cannot run.
    "script-src": ["'self'"],
    # Styles may still be inline: Django admin's change list and django-rq's pages, the QR
    # codes and a few of our templates set them. An injected style cannot run code; moving
    # ours to static CSS would not free the admin's.
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def content_security_policy() -> str:
    policy = getattr(settings, "KAMEN_CONTENT_SECURITY_POLICY", None) or DEFAULT_CSP
    return "; ".join(f"{directive} {' '.join(sources)}" for directive, sources in policy.items())


class SecurityHeadersMiddleware:
    """CSP, Permissions-Policy and the rest Django's SecurityMiddleware does not set."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = content_security_policy()

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        return response


class RequestSizeLimitMiddleware:
    """Refuse an oversized body before anything reads it (413 with a clear message). Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE bounds form fields; this bounds the whole body, files too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = getattr(settings, "KAMEN_MAX_REQUEST_BYTES", 25 * 1024 * 1024)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse(_("请求长度无效"), status=400, content_type="text/plain; charset=utf-8")
        if length > limit:
            return HttpResponse(
                _("请求内容过大（最大 %(size)s MB）") % {"size": limit // (1024 * 1024)},
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


# --- counters ----------------------------------------------------------------------------------
def _client_ip(request) -> str:
    return client_ip(request) or "unknown"


def _hash(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]


class LocalCounters:
    """Expiring counters in this process's memory: the stand-in while the shared cache is down.
    Bounded (the oldest keys go first), so a flood of addresses cannot grow it without end."""

    def __init__(self, max_keys: int = 50_000):
        self.max_keys = max_keys
        self._values: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float):
        found = self._values.get(key)
        if found is None or found[0] <= now:
            self._values.pop(key, None)
            return None
        return found[1]

    def _store(self, key: str, value, window: float, now: float) -> None:
        if len(self._values) >= self.max_keys and key not in self._values:
            for stale in [name for name, (until, _value) in self._values.items() if until <= now]:
                del self._values[stale]
            while len(self._values) >= self.max_keys:
                del self._values[next(iter(self._values))]
        self._values[key] = (now + window, value)

    def bump(self, key: str, window: float) -> int:
        now = time.monotonic()
        with self._lock:
            count = int(self._live(key, now) or 0) + 1
            until = self._values[key][0] if count > 1 else now + window
            self._store(key, count, until - now, now)
            return count

    def get(self, key: str):
        with self._lock:
            return self._live(key, time.monotonic())

    def set(self, key: str, value, window: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._store(key, value, window, now)

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


# Count one more and make sure the counter expires with its window, atomically: an INCR alone
# after the key lapsed would make a counter that never expires (a permanent lock-out).
_BUMP_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
_bump_scripts: dict[int, tuple[object, object]] = {}


def _bump_script(backend: RedisCache):
    """The script bound to one client per connection pool: Django's RedisCache builds a new
    redis-py client for every call, and building one (its table of response callbacks) costs
    more CPU than the round trip."""
    pool = backend._cache._get_connection_pool(True)
    found = _bump_scripts.get(id(pool))
    if found is None or found[0] is not pool:
        client = backend._cache._client(connection_pool=pool)
        found = _bump_scripts[id(pool)] = (pool, client.register_script(_BUMP_SCRIPT))
    return found[1]


def _shared_bump(key: str, window: int) -> int:
    """One more in the shared cache's counter ``key``, which lives ``window`` seconds from its
    first count. On Redis one round trip, a Lua script (EVALSHA) on a client kept for its
    connection pool: a MULTI pipeline, or a new client per call, costs as much CPU to build in
    redis-py as the rest of a status poll. Other caches: add, then incr."""
    backend = cache._connections[cache._alias] if isinstance(cache, ConnectionProxy) else cache
    if isinstance(backend, RedisCache):
        return int(_bump_script(backend)(keys=[backend.make_and_validate_key(key)], args=[window]))
    if cache.add(key, 1, timeout=window):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)
        return 1


class ResilientCounters:
    """The shared cache when it answers, this process's ``LocalCounters`` when it does not.

    After a failure the cache is left alone for ``retry_seconds`` (every request would
    otherwise wait for a refused connection, or a timeout), then tried again."""

    def __init__(self, retry_seconds: float = 2.0):
        self.local = LocalCounters()
        self.retry_seconds = retry_seconds
        self._cache_down_until = 0.0

    @property
    def is_cache_down(self) -> bool:
        return time.monotonic() < self._cache_down_until

    def _shared(self, operation, *args):
        """(True, result) from the cache, or (False, None) when it is down (logged once per
        retry period)."""
        if self.is_cache_down:
            return False, None
        try:
            return True, operation(*args)
        except Exception as error:  # noqa: BLE001 — any cache failure means "use the local ones"
            self._cache_down_until = time.monotonic() + self.retry_seconds
            logger.warning("security.counters_cache_unavailable", extra={"error": error.__class__.__name__})
            return False, None

    def bump(self, key: str, window: int) -> int:
        """Count one more in this fixed window; returns the count so far."""

        ok, count = self._shared(_shared_bump, key, window)
        return count if ok else self.local.bump(key, window)

    def get(self, key: str):
        ok, value = self._shared(cache.get, key)
        return value if ok else self.local.get(key)

    def get_many(self, keys: list[str]) -> dict:
        ok, values = self._shared(cache.get_many, keys)
        if ok:
            return values
        return {key: value for key in keys if (value := self.local.get(key)) is not None}

    def set(self, key: str, value, window: int) -> None:
        ok, _result = self._shared(cache.set, key, value, window)
        if not ok:
            self.local.set(key, value, window)

    def delete(self, key: str) -> None:
        self.local.delete(key)
        self._shared(cache.delete, key)

    def reset(self) -> None:
        """Forget the local counters and any remembered outage (tests; a new process)."""
        self.local.clear()
        self._cache_down_until = 0.0


counters = ResilientCounters()


def _bump(key: str, window: int) -> int:
    return counters.bump(key, window)


def is_over_limit(*, rule: str, subject: str, limit: int, window: int) -> bool:
    """Count one request of ``subject`` under ``rule`` in the current fixed window; True once
    there are more than ``limit``. Never raises: a cache outage counts in this process."""
    bucket = int(time.time() // window)
    return _bump(f"rate:{rule}:{subject}:{bucket}", window) > limit


# --- login brute force ---------------------------------------------------------------------------
def login_limits() -> dict:
    return {
        "per_username": getattr(settings, "KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME", 5),
        "per_ip": getattr(settings, "KAMEN_LOGIN_MAX_FAILURES_PER_IP", 20),
        "window": getattr(settings, "KAMEN_LOGIN_LOCKOUT_SECONDS", 15 * 60),
    }


def _failure_keys(request, username: str) -> list[tuple[str, int]]:
    limits = login_limits()
    keys = [(f"login-fail:ip:{_client_ip(request)}", limits["per_ip"])]
    if username:
        keys.append((f"login-fail:user:{_hash(username)}", limits["per_username"]))
    return keys


def is_login_locked(request, username: str) -> bool:
    return any((counters.get(key) or 0) >= limit for key, limit in _failure_keys(request, username))


def record_login_failure(request, username: str) -> None:
    window = login_limits()["window"]
    for key, _limit in _failure_keys(request, username):
        _bump(key, window)
    logger.warning("security.login_failed", extra={"ip": _client_ip(request), "path": request.path})


def clear_login_failures(request, username: str) -> None:
    if username:
        counters.delete(f"login-fail:user:{_hash(username)}")


def locked_response(request) -> HttpResponse:
    minutes = max(login_limits()["window"] // 60, 1)
    message = _("登录失败次数过多，账户或 IP 已被暂时锁定，请 %(minutes)s 分钟后再试。") % {"minutes": minutes}
    body = render_to_string("riskcontrol/locked.html", {"message": message}, request=request)
    response = HttpResponse(body, status=429)
    response["Retry-After"] = str(login_limits()["window"])
    return response


class LoginThrottleMiddleware:
    """Count failed password posts to the login pages per IP and per username; once either
    passes its limit, answer 429 with a clear message until the window ends — whether or not
    the password is right, so guessing cannot continue."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        paths = getattr(settings, "KAMEN_LOGIN_PATHS", ["/admin/login/", "/agent/login/"])
        if request.method != "POST" or request.path not in paths:
            return self.get_response(request)
        username = str(request.POST.get("username", ""))[:150]
        if is_login_locked(request, username):
            return locked_response(request)
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and response.status_code in (301, 302, 303):
            clear_login_failures(request, username)
        else:
            record_login_failure(request, username)
        return response


# --- rate limits -----------------------------------------------------------------------------------
DEFAULT_RATE_LIMITS = [
    # (name, path regex, methods, requests, seconds) per client IP.
    ("checkout", r"^/buy/\d+/$", ("POST",), 20, 60),
    # The order page and the look-up form. Not the page's status polls: a signed one opens one
    # order's status and nothing else, an unsigned one needs the session that placed the order,
    # and either refused is counted as page guessing (riskcontrol.guessing) — so a poll costs
    # no Redis round trip, and buyers behind one address cannot poll each other into a 429.
    ("lookup", r"^/orders/[^/]+/$|^/lookup/", ("GET", "POST"), 120, 60),
    ("login", r"^/(admin|agent)/login/$", ("POST",), 30, 60),
]


class RateLimitMiddleware:
    """Fixed-window request limits per client IP for the public endpoints that attackers
    hammer: checkout, order look-up and card-key pages, log-in. Payment callbacks are not
    limited here: a genuine one is known only by its signature, so the callback service limits
    the unverified ones per source (``orders.services.payments``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, pattern, methods, limit, window in getattr(settings, "KAMEN_RATE_LIMITS", DEFAULT_RATE_LIMITS):
            if request.method in methods and re.search(pattern, request.path):
                if is_over_limit(rule=name, subject=_client_ip(request), limit=limit, window=window):
                    logger.warning(
                        "security.rate_limited",
                        extra={"rule": name, "ip": _client_ip(request)},
                    )
                    response = HttpResponse(
                        _("请求过于频繁，请稍后再试"),
                        status=429,
                        content_type="text/plain; charset=utf-8",
                    )
                    response["Retry-After"] = str(window)
                    return response
                break
        return self.get_response(request)


# --- two-factor gate -----------------------------------------------------------------------------------
SESSION_KEY = "kamen_2fa_user"
GATED_PREFIXES = ("/admin/", "/console/")


def is_two_factor_verified(request) -> bool:
    return request.session.get(SESSION_KEY) == request.user.pk


class TwoFactorMiddleware:
    """Staff with TOTP enrolled must pass the code step after the password before any console
    page; with KAMEN_STAFF_2FA_REQUIRED, staff without it are sent to enrol first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The path first: asking for the user loads the session, which a shop page (or the
        # order page's polling) would otherwise never read.
        user = getattr(request, "user", None) if request.path.startswith(GATED_PREFIXES) else None
        if (
            user is not None
            and user.is_authenticated
            and user.is_staff
            and request.path not in ("/admin/login/", "/admin/logout/")
            and not is_two_factor_verified(request)
        ):
            from kamen.models import StaffTwoFactor

            enrolled = StaffTwoFactor.objects.filter(user_id=user.pk, confirmed_at__isnull=False).exists()
            if enrolled:
                return HttpResponseRedirect(
                    f"{reverse('two-factor-verify')}?{urlencode({'next': request.get_full_path()})}"
                )
            if getattr(settings, "KAMEN_STAFF_2FA_REQUIRED", False):
                return HttpResponseRedirect(reverse("two-factor-setup"))
        return self.get_response(request)
