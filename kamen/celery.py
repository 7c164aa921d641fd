"""Celery app: the order pipeline and scheduled jobs.

Without REDIS_URL (embedded default) tasks run eagerly, in-process; callers still enqueue
through ``transaction.on_commit`` so the work happens right after the commit either way.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kamen.settings.base")

app = Celery("kamen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
