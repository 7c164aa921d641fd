"""Test settings: PostgreSQL and Redis on 127.0.0.1 unless the environment says otherwise."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kamen")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Fixed throwaway keys so tests are reproducible; never used outside the test run.
os.environ.setdefault(
    "KAMEN_ENCRYPTION_KEYS",
    "t1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,t2:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
)
os.environ.setdefault("KAMEN_BLIND_INDEX_KEY", "YmxpbmQtaW5kZXgta2V5LWZvci10ZXN0cy0wMDAwMDA=")

from .base import *  # noqa: E402,F403
from .base import CACHES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
CACHES["default"]["KEY_PREFIX"] = "kamen-test-" + os.environ.get("TEST_DATABASE_NAME", "default")
# default and private as base chose them: local directories, or the bucket of KAMEN_S3_BUCKET
# (the two-host test runs its hosts on one).
STORAGES = STORAGES | {  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Many tests log in and check out from 127.0.0.1 in one run: the shared counters would lock
# them out. The security tests set their own limits.
KAMEN_RATE_LIMITS = []
KAMEN_LOGIN_MAX_FAILURES_PER_USERNAME = 1000
KAMEN_LOGIN_MAX_FAILURES_PER_IP = 1000
KAMEN_UNVERIFIED_CALLBACKS_PER_MINUTE = 1000
