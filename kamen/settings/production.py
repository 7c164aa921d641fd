"""Production: secure cookies, HSTS, a real secret key, Redis and PostgreSQL required."""

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASE_URL, REDIS_URL, SECRET_KEY, env_bool

if SECRET_KEY.startswith("kamen-embedded") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("Set SECRET_KEY to a random string of at least 50 characters.")
if not DATABASE_URL or not REDIS_URL:
    raise ImproperlyConfigured("Production needs DATABASE_URL (PostgreSQL) and REDIS_URL.")
# Links in e-mails, posters and stored addresses are built from SITE_URL; a default would be
# one host's own address, so production refuses to guess.
_site_url = os.environ.get("SITE_URL", "").strip()
_site_parts = urlsplit(_site_url)
if _site_parts.scheme not in ("http", "https") or not _site_parts.hostname:
    raise ImproperlyConfigured(
        "Set SITE_URL to the site's public address, the same on every host "
        "(e.g. https://shop.example.com): it is missing or not an http(s) URL."
    )

DEBUG = False
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
STORAGES = STORAGES | {  # noqa: F405 - default and private as base chose them (local or S3)
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Orders: the sandbox gateway's one-click cashier must never take real orders.
SANDBOX_GATEWAY_ENABLED = env_bool("SANDBOX_GATEWAY_ENABLED", False)
