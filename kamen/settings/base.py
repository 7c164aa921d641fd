"""Base settings, read from the environment (12-factor).

Embedded default (no DATABASE_URL, no REDIS_URL): a SQLite file under ``var/`` and background
work run in-process right after commit. Real mode: PostgreSQL and Redis (Celery + RQ).
"""

import os
from pathlib import Path

import dj_database_url
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
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{VAR_DIR / 'kamen.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if IS_EMBEDDED_DATABASE:
    # SQLite: wait for the writer instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
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
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_BEAT_SCHEDULE = {
    "check-stock-levels": {
        "task": "catalog.tasks.check_stock_levels_task",
        "schedule": 300.0,
    },
}

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
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(60 * 60 * 8)))
SESSION_COOKIE_HTTPONLY = True

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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
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
SUPPLIER_CIRCUIT_COOLDOWN_SECONDS = int(os.environ.get("SUPPLIER_CIRCUIT_COOLDOWN_SECONDS", "300"))

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Risk control and security (riskcontrol, kamen.security) ---------------------------------
MIDDLEWARE += [
    "kamen.security.SecurityHeadersMiddleware",
    "kamen.security.RequestSizeLimitMiddleware",
    "kamen.security.RateLimitMiddleware",
    "kamen.security.LoginThrottleMiddleware",
    "kamen.security.TwoFactorMiddleware",
    "riskcontrol.fingerprint.DeviceMiddleware",
]
# Whole request bodies above this are refused with 413 (card-key imports are up to 20 MiB).
KAMEN_MAX_REQUEST_BYTES = int(os.environ.get("KAMEN_MAX_REQUEST_BYTES", str(CARD_KEY_IMPORT_MAX_BYTES + 5 * 1024 * 1024)))
KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME = int(os.environ.get("KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME", "5"))
KAMEN_LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("KAMEN_LOGIN_MAX_FAILURES_PER_IP", "20"))
KAMEN_LOGIN_LOCKOUT_SECONDS = int(os.environ.get("KAMEN_LOGIN_LOCKOUT_SECONDS", str(15 * 60)))
KAMEN_STAFF_2FA_REQUIRED = env_bool("KAMEN_STAFF_2FA_REQUIRED", False)
KAMEN_REAL_NAME_PROVIDER = os.environ.get("KAMEN_REAL_NAME_PROVIDER", "riskcontrol.kyc.SandboxRealNameProvider")
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
CSRF_COOKIE_HTTPONLY = True
CELERY_BEAT_SCHEDULE["risk-scans"] = {"task": "riskcontrol.tasks.run_risk_scans_task", "schedule": 3600.0}
