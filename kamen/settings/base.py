"""Base settings, read from the environment (12-factor).

Embedded default (no DATABASE_URL, no REDIS_URL): a private PostgreSQL cluster under
``var/postgres`` (kamen.private_postgres, started by ``make run``) and background work run
in-process right after commit. Real mode: PostgreSQL and Redis (Celery + RQ).
"""

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("KAMEN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# The embedded default is for a merchant trying Kamen on their own machine; production
# settings refuse to start without a real SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or "kamen-embedded-insecure-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "kamen.apps.KamenAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "mptt",
    "django_rq",
    "ninja",  # the open API (docs/adr/0019): its Swagger UI files, served locally
    "kamen.apps.KamenConfig",
    "catalog.apps.CatalogConfig",
    "distribution.apps.DistributionConfig",
    "orders.apps.OrdersConfig",
    "commissions.apps.CommissionsConfig",
    "riskcontrol.apps.RiskcontrolConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "kamen.text_input.ControlCharacterMiddleware",  # before anything reads an input
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kamen.urls"
WSGI_APPLICATION = "kamen.wsgi.application"
AUTH_USER_MODEL = "kamen.User"
LOGIN_URL = "admin:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
IS_EMBEDDED_DATABASE = not DATABASE_URL
if IS_EMBEDDED_DATABASE:
    # The private cluster under var/postgres: a Unix socket, no TCP port (docs/adr/0016).
    from kamen.private_postgres import database_settings  # noqa: E402

    DATABASES = {"default": database_settings(VAR_DIR)}
else:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
DATABASES["default"] |= {
    "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    "CONN_HEALTH_CHECKS": True,
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
# Behind PgBouncer in transaction mode (docker compose; docs/adr/0015-beyond-one-machine.md):
# DATABASE_URL is the pooler, and each transaction may run on another server connection. So no
# server-side cursors (QuerySet.iterator()), no SQL-level PREPARE (kamen.db), and what must keep
# one session throughout (the periodic jobs' advisory locks, kamen.periodic) goes to
# DATABASE_DIRECT_URL, PostgreSQL itself.
DATABASE_POOLED = env_bool("DATABASE_POOLED")
KAMEN_DB_PREPARE = env_bool("KAMEN_DB_PREPARE", not DATABASE_POOLED)
if DATABASE_POOLED:
    if not os.environ.get("DATABASE_DIRECT_URL"):
        raise ImproperlyConfigured("DATABASE_POOLED=1 needs DATABASE_DIRECT_URL: PostgreSQL itself, not the pooler.")
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if os.environ.get("DATABASE_DIRECT_URL"):
    DATABASES["direct"] = dj_database_url.parse(os.environ["DATABASE_DIRECT_URL"], conn_max_age=0)
    DATABASES["direct"]["TEST"] = {"MIRROR": "default"}
# psycopg 3 sends parameters apart from the statement text (server-side binding) and prepares a
# statement once it ran ``prepare_threshold`` times on a connection: the order pipeline's hot
# statements are planned once per connection, not on every call (docs/adr/0017). Behind
# PgBouncer in transaction mode a prepared statement stays on one server connection: off by
# default when pooled (PgBouncer >= 1.21 with max_prepared_statements carries psycopg's
# protocol-level statements, so KAMEN_DB_PREPARE=1 may then stay on).
DATABASES["default"].setdefault("OPTIONS", {}).update(
    server_side_binding=True, prepare_threshold=2 if KAMEN_DB_PREPARE else None
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background work ------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
BACKGROUND_IN_PROCESS = not REDIS_URL

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = BACKGROUND_IN_PROCESS
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_RETRY_DELAY = 5
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Celery's Django fix-up closes the database connection before and after every task unless told
# to reuse it: every task connected anew (a quarter of a worker's CPU in the storm's profile,
# and a new PostgreSQL backend forked per task, its prepared statements lost). Kept across up to
# this many tasks; between tasks kamen.celery checks it as Django does between requests
# (CONN_MAX_AGE, health check, errors), so a broken one is opened afresh (docs/adr/0014).
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))
# Workers that consume the ``fulfilment`` queue (kamen.celery, ADR 0013): their own unacked keys
# and a visibility timeout longer than any task or retry countdown on their queues, scanned
# every 10 s, so a dead worker's messages come back in ~3 minutes instead of an hour.
CELERY_FULFILMENT_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_FULFILMENT_VISIBILITY_TIMEOUT", "180")),
    "unacked_key": "unacked:fulfilment",
    "unacked_index_key": "unacked_index:fulfilment",
    "unacked_mutex_key": "unacked_mutex:fulfilment",
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
# Each worker also consumes its own queue: the watchdog's heartbeat goes through it.
CELERY_WORKER_DIRECT = True
# The queues are fulfilment, io and default (make run starts one worker on fulfilment,default
# and one on io); a task without a route goes to default.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_BEAT_SCHEDULE = {
    "check-stock-levels": {
        "task": "catalog.tasks.check_stock_levels_task",
        "schedule": 300.0,
    },
    "sync-supplier-prices": {
        "task": "catalog.tasks.sync_supplier_prices_task",
        "schedule": float(os.environ.get("SUPPLIER_SYNC_INTERVAL_SECONDS", "600")),
    },
    # Docked products: webhooks keep them in step within seconds; this catches a lost one.
    "reconcile-upstreams": {
        "task": "catalog.tasks.reconcile_upstreams_task",
        "schedule": float(os.environ.get("UPSTREAM_RECONCILE_INTERVAL_SECONDS", "3600")),
    },
}

# Queues by kind (docs/adr/0014-request-path-cost.md): a paid order's fulfilment never waits
# behind a network call. "fulfilment": card-key delivery and its re-drive (database work only,
# fast); "io": everything that waits on another host (gateway notifications, the sandbox
# gateway's included, refunds, payment queries, supplier calls and top-ups, e-mails, payouts),
# each with a time limit; "default": periodic jobs and the rest. scripts/run.sh and
# docker-compose start a worker per kind; a worker started without -Q consumes all three.
from kombu import Queue  # noqa: E402

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("fulfilment"), Queue("io"), Queue("default")]
FULFILMENT_TASKS = [
    "orders.tasks.fulfil_order_task",
    "orders.tasks.fulfil_backorders_task",
    "orders.tasks.sweep_stalled_orders_task",
]
IO_TASKS = [
    "orders.tasks.deliver_sandbox_notification_task",
    "orders.tasks.send_delivery_email_task",
    "orders.tasks.refund_order_task",
    "orders.tasks.query_pending_payments_task",
    "catalog.tasks.sync_supplier_prices_task",
    "catalog.tasks.reconcile_upstreams_task",
    "commissions.tasks.pay_withdrawal_task",
]
CELERY_TASK_ROUTES = {name: {"queue": "fulfilment"} for name in FULFILMENT_TASKS} | {
    name: {"queue": "io"} for name in IO_TASKS
}
# A network task gives up (and retries later) long before the default 300 s: one slow host
# must not hold an io worker for minutes. The HTTP calls themselves time out after 10 s.
CELERY_TASK_ANNOTATIONS = {name: {"soft_time_limit": 45, "time_limit": 60} for name in IO_TASKS}

RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL or "redis://127.0.0.1:6379/0",
        "DEFAULT_TIMEOUT": 3600,
    },
}

# --- Cache ----------------------------------------------------------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "kamen"),
            # An unreachable Redis must cost a request a moment, not the OS's connect timeout:
            # the callers fall back (kamen.security.counters) when the cache fails.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's database sessions, written in one statement (kamen/sessions.py, docs/adr/0014).
SESSION_ENGINE = "kamen.sessions"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(60 * 60 * 8)))
SESSION_COOKIE_HTTPONLY = True
# Buyer order look-up (自助查单): failed attempts per order number / contact, and per IP (many
# buyers share a carrier NAT address, so that limit is higher), before a lock-out window.
ORDER_LOOKUP_MAX_ATTEMPTS = int(os.environ.get("ORDER_LOOKUP_MAX_ATTEMPTS", "5"))
ORDER_LOOKUP_MAX_ATTEMPTS_PER_IP = int(os.environ.get("ORDER_LOOKUP_MAX_ATTEMPTS_PER_IP", "20"))
ORDER_LOOKUP_LOCKOUT_MINUTES = int(os.environ.get("ORDER_LOOKUP_LOCKOUT_MINUTES", "15"))
# "keyed": the order query password is HMAC-SHA256'd under the blind-index key (not stored in
# the database), per-order salt; "project": PASSWORD_HASHERS (PBKDF2, ~0.5 s per checkout).
# Why: orders/services/query_password.py.
ORDER_QUERY_PASSWORD_HASHER = os.environ.get("ORDER_QUERY_PASSWORD_HASHER", "keyed")

# --- i18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
WHITENOISE_USE_FINDERS = True
# Files every host sees (uploads, thumbnails, posters) go through the storage API: "default"
# holds what the shop shows (product images), "private" what only Kamen's own views hand out
# after a permission check (posters), never under MEDIA_URL. Local directories in the embedded
# default; with KAMEN_S3_BUCKET set, one S3-compatible bucket (MinIO, SeaweedFS, OSS, COS, S3)
# that every host shares, under the prefixes "media/" and "private/".
PRIVATE_ROOT = Path(os.environ.get("KAMEN_PRIVATE_ROOT", VAR_DIR / "private"))
KAMEN_S3_BUCKET = os.environ.get("KAMEN_S3_BUCKET", "")
if KAMEN_S3_BUCKET:
    _s3_options = {
        "bucket_name": KAMEN_S3_BUCKET,
        "endpoint_url": os.environ.get("KAMEN_S3_ENDPOINT_URL") or None,
        "access_key": os.environ.get("KAMEN_S3_ACCESS_KEY_ID") or None,
        "secret_key": os.environ.get("KAMEN_S3_SECRET_ACCESS_KEY") or None,
        "region_name": os.environ.get("KAMEN_S3_REGION") or None,
        # MinIO and SeaweedFS want bucket names in the path, not in the host name.
        "addressing_style": os.environ.get("KAMEN_S3_ADDRESSING_STYLE", "path"),
        "signature_version": "s3v4",
        "default_acl": None,
        "querystring_expire": int(os.environ.get("KAMEN_S3_URL_EXPIRE_SECONDS", "3600")),
    }
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": _s3_options
        | {
            "location": "media",
            "file_overwrite": False,
            # A public host (CDN, or the proxy's route to the bucket) serves media/ unsigned;
            # without one every image URL is signed and expires.
            "custom_domain": os.environ.get("KAMEN_S3_CUSTOM_DOMAIN") or None,
            "url_protocol": os.environ.get("KAMEN_S3_URL_PROTOCOL", "https:"),
            "querystring_auth": env_bool("KAMEN_S3_QUERYSTRING_AUTH", True),
        },
    }
    _private_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": _s3_options
        | {"location": "private", "file_overwrite": True, "querystring_auth": True, "custom_domain": None},
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    _private_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": PRIVATE_ROOT, "base_url": None, "allow_overwrite": True},
    }
STORAGES = {
    "default": _default_storage,
    "private": _private_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Card-key import files: 100,000 keys of ~60 bytes fit comfortably in 20 MiB.
CARD_KEY_IMPORT_MAX_BYTES = int(os.environ.get("CARD_KEY_IMPORT_MAX_BYTES", str(20 * 1024 * 1024)))
PRODUCT_IMAGE_MAX_BYTES = int(os.environ.get("PRODUCT_IMAGE_MAX_BYTES", str(5 * 1024 * 1024)))

# --- Secrets vault --------------------------------------------------------------------------
# KAMEN_ENCRYPTION_KEYS: "kid:base64(32 bytes),kid2:..." — the last one encrypts, all decrypt.
# KAMEN_BLIND_INDEX_KEY: base64(32 bytes) for the keyed hash that finds duplicates.
# Absent (embedded default only): generated once into var/keys.json, never committed.
KAMEN_ENCRYPTION_KEYS = os.environ.get("KAMEN_ENCRYPTION_KEYS", "")
KAMEN_BLIND_INDEX_KEY = os.environ.get("KAMEN_BLIND_INDEX_KEY", "")
KAMEN_KEYS_FILE = VAR_DIR / "keys.json"

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Kamen <noreply@kamen.local>")
MERCHANT_ALERT_EMAILS = env_list("MERCHANT_ALERT_EMAILS")

# --- Suppliers ------------------------------------------------------------------------------
SANDBOX_SUPPLIER_URL = os.environ.get("SANDBOX_SUPPLIER_URL", "")
SUPPLIER_HTTP_TIMEOUT = float(os.environ.get("SUPPLIER_HTTP_TIMEOUT", "10"))
SUPPLIER_CIRCUIT_FAILURES = int(os.environ.get("SUPPLIER_CIRCUIT_FAILURES", "3"))
SUPPLIER_CIRCUIT_COOLDOWN_SECONDS = int(os.environ.get("SUPPLIER_CIRCUIT_COOLDOWN_SECONDS", "60"))

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Payment gateways (docs/payments.md) ----------------------------------------------------
# Keys: PEM text, bare base64 (as the Alipay key tool prints it) or a file path. Empty: off.
ALIPAY_APP_ID = os.environ.get("ALIPAY_APP_ID", "")
ALIPAY_PRIVATE_KEY = os.environ.get("ALIPAY_PRIVATE_KEY", "")
ALIPAY_PUBLIC_KEY = os.environ.get("ALIPAY_PUBLIC_KEY", "")
ALIPAY_SELLER_ID = os.environ.get("ALIPAY_SELLER_ID", "")
ALIPAY_GATEWAY_URL = os.environ.get("ALIPAY_GATEWAY_URL", "")
WECHATPAY_APP_ID = os.environ.get("WECHATPAY_APP_ID", "")
WECHATPAY_MCH_ID = os.environ.get("WECHATPAY_MCH_ID", "")
WECHATPAY_API_V3_KEY = os.environ.get("WECHATPAY_API_V3_KEY", "")
WECHATPAY_PRIVATE_KEY = os.environ.get("WECHATPAY_PRIVATE_KEY", "")
WECHATPAY_SERIAL_NO = os.environ.get("WECHATPAY_SERIAL_NO", "")
WECHATPAY_PLATFORM_CERTS = os.environ.get("WECHATPAY_PLATFORM_CERTS", "")
WECHATPAY_API_BASE = os.environ.get("WECHATPAY_API_BASE", "")
# Each gateway's fee, booked with every payment (docs/adr/0020): a rate in percent of the
# payment ("0.6"), a minimum per payment in yuan, and whether the gateway gives the fee back
# with a refund (1) or keeps it (0). Checked by orders.gateways.configured.fee_schedule.
ALIPAY_FEE_RATE = os.environ.get("ALIPAY_FEE_RATE", "0.6")
ALIPAY_FEE_MINIMUM = os.environ.get("ALIPAY_FEE_MINIMUM", "0")
ALIPAY_FEE_REFUNDED = os.environ.get("ALIPAY_FEE_REFUNDED", "1")
WECHATPAY_FEE_RATE = os.environ.get("WECHATPAY_FEE_RATE", "0.6")
WECHATPAY_FEE_MINIMUM = os.environ.get("WECHATPAY_FEE_MINIMUM", "0")
WECHATPAY_FEE_REFUNDED = os.environ.get("WECHATPAY_FEE_REFUNDED", "1")
SANDBOX_FEE_RATE = os.environ.get("SANDBOX_FEE_RATE", "0.6")
SANDBOX_FEE_MINIMUM = os.environ.get("SANDBOX_FEE_MINIMUM", "0")
SANDBOX_FEE_REFUNDED = os.environ.get("SANDBOX_FEE_REFUNDED", "0")

# --- Order pipeline (orders issue) ----------------------------------------------------------
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")  # links in emails
MIDDLEWARE += ["orders.middleware.ReferralMiddleware"]
if BACKGROUND_IN_PROCESS:  # no beat in the embedded mode: shop traffic runs the order jobs
    MIDDLEWARE += ["orders.middleware.EmbeddedHousekeepingMiddleware"]
ORDER_PAYMENT_WINDOW_MINUTES = int(os.environ.get("ORDER_PAYMENT_WINDOW_MINUTES", "15"))
REFERRAL_COOKIE_DAYS = int(os.environ.get("REFERRAL_COOKIE_DAYS", "30"))
ORDER_LINK_MAX_AGE_DAYS = int(os.environ.get("ORDER_LINK_MAX_AGE_DAYS", "30"))
# A paid or fulfilling order with no progress for this long is re-driven by the sweeper.
ORDER_STALL_MINUTES = int(os.environ.get("ORDER_STALL_MINUTES", "5"))
# A back-order of a product sourced from an upstream Kamen (docking) is tried again, every
# channel once more, this long after its last try (by the stall sweeper, every 2 minutes).
ORDER_UPSTREAM_BACKORDER_RETRY_SECONDS = int(os.environ.get("ORDER_UPSTREAM_BACKORDER_RETRY_SECONDS", "60"))
# What a buyer whose paid order waits in risk review is told it usually takes (minutes).
RISK_REVIEW_ESTIMATE_MINUTES = int(os.environ.get("RISK_REVIEW_ESTIMATE_MINUTES", "30"))
# A paid order whose fulfilment has not started this long after payment is fulfilled by the
# recovery loop every Celery worker runs every ORDER_RECOVERY_INTERVAL_SECONDS (ADR 0013).
ORDER_RECOVERY_GRACE_SECONDS = int(os.environ.get("ORDER_RECOVERY_GRACE_SECONDS", "10"))
ORDER_RECOVERY_INTERVAL_SECONDS = float(os.environ.get("ORDER_RECOVERY_INTERVAL_SECONDS", "5"))
ORDER_FULFILMENT_MAX_ATTEMPTS = int(os.environ.get("ORDER_FULFILMENT_MAX_ATTEMPTS", "5"))
# After the last attempt: "retry" (the sweeper tries again later), "staff" (wait in the failed
# queue for a person) or "refund" (refund automatically).
ORDER_FULFILMENT_FAILURE_POLICY = os.environ.get("ORDER_FULFILMENT_FAILURE_POLICY", "staff")
# Paid but out of stock: wait this long for new keys, then refund automatically.
ORDER_BACKORDER_MAX_HOURS = int(os.environ.get("ORDER_BACKORDER_MAX_HOURS", "72"))
# The delivery email always carries the signed order link; the card keys themselves too,
# except with the console backend (embedded default), which would print them to the log.
ORDER_DELIVERY_EMAIL_INCLUDES_SECRETS = env_bool(
    "ORDER_DELIVERY_EMAIL_INCLUDES_SECRETS", "console" not in EMAIL_BACKEND
)
# The sandbox payment gateway Kamen ships (the demo and the tests use it). Its cashier marks
# orders paid with one click, so production settings turn it off unless asked for.
SANDBOX_GATEWAY_ENABLED = env_bool("SANDBOX_GATEWAY_ENABLED", True)
# The gateway checkout sends buyers to ("sandbox", "alipay", "wechatpay" once configured).
ORDER_DEFAULT_GATEWAY = os.environ.get("ORDER_DEFAULT_GATEWAY", "sandbox")
SANDBOX_GATEWAY_APP_ID = os.environ.get("SANDBOX_GATEWAY_APP_ID", "kamen-sandbox")
SANDBOX_GATEWAY_SECRET = os.environ.get("SANDBOX_GATEWAY_SECRET", "") or f"sandbox:{SECRET_KEY}"
SANDBOX_NOTIFY_DUPLICATE_PROBABILITY = float(os.environ.get("SANDBOX_NOTIFY_DUPLICATE_PROBABILITY", "0.2"))
SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY = float(os.environ.get("SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY", "0.2"))
SANDBOX_NOTIFY_MAX_ATTEMPTS = int(os.environ.get("SANDBOX_NOTIFY_MAX_ATTEMPTS", "8"))
# A sandbox notification whose next attempt is this overdue lost its Celery message: every
# worker's loop attempts it from the table (orders.gateways.sandbox).
SANDBOX_NOTIFY_RECOVERY_GRACE_SECONDS = int(os.environ.get("SANDBOX_NOTIFY_RECOVERY_GRACE_SECONDS", "5"))
CELERY_BEAT_SCHEDULE |= {
    "orders-expire-unpaid": {"task": "orders.tasks.expire_unpaid_orders_task", "schedule": 60.0},
    "orders-sweep-stalled": {"task": "orders.tasks.sweep_stalled_orders_task", "schedule": 120.0},
    "orders-query-pending-payments": {"task": "orders.tasks.query_pending_payments_task", "schedule": 180.0},
}

# Reconciliation against the gateways (docs/adr/0020): yesterday's statements, each morning
# (the gateways publish them from about 9:00).
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE |= {
    "orders-reconcile-statements": {
        "task": "orders.tasks.reconcile_statements_task",
        "schedule": crontab(hour=9, minute=30),
    },
}

# --- Distribution network (distribution issue): daily housekeeping -----------------------------
CELERY_BEAT_SCHEDULE |= {
    "distribution-clean-out": {"task": "distribution.tasks.run_clean_out_task", "schedule": 86400.0},
    "distribution-segment-tags": {"task": "distribution.tasks.compute_segment_tags_task", "schedule": 86400.0},
    "distribution-promotions": {"task": "distribution.tasks.run_promotions_task", "schedule": 86400.0},
}

# --- Commissions ----------------------------------------------------------------------------
# Settlement: beat runs one entry per cycle; only the merchant's chosen cycle
# (CommissionPolicy.settlement_cycle) settles, and each cycle period settles once.
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE |= {
    "settle-commissions-daily": {
        "task": "commissions.tasks.settle_commissions_task",
        "schedule": crontab(hour=2, minute=0),
        "args": ("daily",),
    },
    "settle-commissions-weekly": {
        "task": "commissions.tasks.settle_commissions_task",
        "schedule": crontab(hour=2, minute=30, day_of_week=1),
        "args": ("weekly",),
    },
    "settle-commissions-monthly": {
        "task": "commissions.tasks.settle_commissions_task",
        "schedule": crontab(hour=3, minute=0, day_of_month=1),
        "args": ("monthly",),
    },
    "redrive-approved-withdrawals": {
        "task": "commissions.tasks.redrive_approved_withdrawals_task",
        "schedule": 600.0,
    },
    "check-paying-withdrawals": {
        "task": "commissions.tasks.check_paying_withdrawals_task",
        "schedule": 300.0,
    },
}
COMMISSIONS_PAYOUT_ADAPTER = os.environ.get("COMMISSIONS_PAYOUT_ADAPTER", "commissions.payouts.SandboxPayoutAdapter")
COMMISSIONS_SANDBOX_PAYOUT_OUTCOME = os.environ.get("COMMISSIONS_SANDBOX_PAYOUT_OUTCOME", "success")
# Real payouts per method (ADR 0021): e.g. COMMISSIONS_PAYOUT_ADAPTER_ALIPAY=commissions.payouts.alipay.from_settings
# and COMMISSIONS_PAYOUT_ADAPTER_WECHAT=commissions.payouts.wechatpay.from_settings (they use the
# ALIPAY_* / WECHATPAY_* credentials of the payment gateways); unset methods use the adapter above.
COMMISSIONS_PAYOUT_ADAPTERS = {
    method: os.environ[f"COMMISSIONS_PAYOUT_ADAPTER_{method.upper()}"]
    for method in ("alipay", "wechat", "bank_card")
    if os.environ.get(f"COMMISSIONS_PAYOUT_ADAPTER_{method.upper()}")
}
WECHATPAY_TRANSFER_SCENE_ID = os.environ.get("WECHATPAY_TRANSFER_SCENE_ID", "1005")

# --- Risk control and security (riskcontrol, kamen.security) ---------------------------------
MIDDLEWARE += [
    "kamen.security.SecurityHeadersMiddleware",
    "kamen.security.RequestSizeLimitMiddleware",
    "kamen.security.RateLimitMiddleware",
    "kamen.security.LoginThrottleMiddleware",
    "kamen.security.TwoFactorMiddleware",
    "riskcontrol.fingerprint.DeviceMiddleware",
    # Innermost, so a view's lost database connection is answered (503) before the others see it.
    "kamen.resilience.DatabaseUnavailableMiddleware",
]
# Enqueueing on the request path (fulfilment after a callback, the sandbox's notifications,
# e-mails) must fail fast while Redis is down: the paid order is in the database and the recovery
# loop re-drives it. Without a bound, kombu retries the connection for ~6 s inside the request.
CELERY_BROKER_TRANSPORT_OPTIONS |= {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# A request whose database connection broke (a PostgreSQL restart) gets a 503 page asking the
# browser to retry after this many seconds (kamen.resilience).
KAMEN_DATABASE_RETRY_AFTER_SECONDS = int(os.environ.get("KAMEN_DATABASE_RETRY_AFTER_SECONDS", "5"))
# Whole request bodies above this are refused with 413 (card-key imports are up to 20 MiB).
KAMEN_MAX_REQUEST_BYTES = int(os.environ.get("KAMEN_MAX_REQUEST_BYTES", str(CARD_KEY_IMPORT_MAX_BYTES + 5 * 1024 * 1024)))
KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME = int(os.environ.get("KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME", "5"))
KAMEN_LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("KAMEN_LOGIN_MAX_FAILURES_PER_IP", "20"))
KAMEN_LOGIN_LOCKOUT_SECONDS = int(os.environ.get("KAMEN_LOGIN_LOCKOUT_SECONDS", str(15 * 60)))
KAMEN_STAFF_2FA_REQUIRED = env_bool("KAMEN_STAFF_2FA_REQUIRED", False)
# Payment notifications whose signature fails, per source address and minute; past it, 429
# (genuine, correctly signed ones are never limited).
KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE = int(os.environ.get("KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE", "30"))
# Reverse proxies whose X-Forwarded-For / X-Real-IP is believed (kamen.client_ip): addresses or
# CIDR ranges, comma-separated. Empty: nothing is trusted and the connecting address is the
# buyer's. Checked here so a typo stops the start instead of trusting nobody.
KAMEN_TRUSTED_PROXIES = env_list("KAMEN_TRUSTED_PROXIES")
for _proxy in KAMEN_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"KAMEN_TRUSTED_PROXIES: {_proxy!r} is not an IP address or CIDR range") from None
KAMEN_REAL_NAME_PROVIDER = os.environ.get("KAMEN_REAL_NAME_PROVIDER", "riskcontrol.kyc.SandboxRealNameProvider")
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
CSRF_COOKIE_HTTPONLY = True
CELERY_BEAT_SCHEDULE["risk-scans"] = {"task": "orders.tasks.run_risk_scans_task", "schedule": 3600.0}

# Team performance bonus (团队业绩奖励): on the 1st, for the month just ended; pays once.
CELERY_BEAT_SCHEDULE |= {
    "commissions-team-bonus": {
        "task": "commissions.tasks.team_bonus_task",
        "schedule": crontab(hour=4, minute=0, day_of_month=1),
    },
}

# --- One scheduler across hosts (docs/adr, issue 25) --------------------------------------------
# `celery -A kamen beat` may run on every host: celery-redbeat keeps the schedule and each job's
# last run in Redis, and only the beat holding the Redis lock sends anything. The holder renews
# the lock on every tick (at most KAMEN_BEAT_MAX_INTERVAL_SECONDS apart); if its host dies, the
# lock expires after KAMEN_BEAT_LOCK_SECONDS and a waiting beat takes over, reading the last runs
# from Redis, so no period is sent twice. The jobs themselves never overlap (kamen.periodic).
if REDIS_URL:
    CELERY_BEAT_SCHEDULER = "redbeat.RedBeatScheduler"
    CELERY_REDBEAT_REDIS_URL = REDIS_URL
    CELERY_REDBEAT_REDIS_OPTIONS = {}  # not the broker's transport options (visibility timeouts)
    CELERY_REDBEAT_KEY_PREFIX = os.environ.get("KAMEN_BEAT_KEY_PREFIX", "kamen:beat")
    CELERY_REDBEAT_LOCK_TIMEOUT = int(os.environ.get("KAMEN_BEAT_LOCK_SECONDS", "20"))
    CELERY_BEAT_MAX_LOOP_INTERVAL = int(os.environ.get("KAMEN_BEAT_MAX_INTERVAL_SECONDS", "5"))

# --- Docking (对接) and the open API (docs/adr/0019) -------------------------------------------
DOCKING_WEBHOOK_TASKS = [
    "distribution.docking.tasks.deliver_webhook_event_task",
    "distribution.docking.tasks.deliver_due_webhooks_task",
]
CELERY_TASK_ROUTES |= {name: {"queue": "io"} for name in DOCKING_WEBHOOK_TASKS}
CELERY_TASK_ANNOTATIONS |= {name: {"soft_time_limit": 240, "time_limit": 300} for name in DOCKING_WEBHOOK_TASKS}
CELERY_BEAT_SCHEDULE |= {
    "docking-deliver-due-webhooks": {"task": "distribution.docking.tasks.deliver_due_webhooks_task", "schedule": 15.0},
    "docking-product-events": {"task": "distribution.docking.tasks.emit_product_events_task", "schedule": 15.0},
    "docking-purge-api-nonces": {"task": "distribution.docking.tasks.purge_api_nonces_task", "schedule": 600.0},
}
