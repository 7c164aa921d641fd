"""The embedded default's stand-in for Celery beat.

Real mode runs ``celery beat``. The embedded default has no broker, yet expiring unpaid orders,
re-driving stalled fulfilment and stock alerts must still happen, so ``make run`` starts
``manage.py run_embedded_scheduler`` beside the web server: it reads the same
``CELERY_BEAT_SCHEDULE`` and runs each due task in-process, one at a time.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from celery.schedules import maybe_schedule
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass
class ScheduledJob:
    name: str
    task: str
    schedule: object
    last_run_at: datetime | None = None
    runs: int = 0
    failures: int = 0
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def jobs_from_settings(*, app=None) -> list[ScheduledJob]:
    from kamen.celery import app as celery_app

    if app is None:
        # autodiscover_tasks() is lazy: without a worker nothing has imported the tasks yet
        celery_app.loader.import_default_modules()
    app = app or celery_app
    jobs = []
    for name, entry in sorted(getattr(settings, "CELERY_BEAT_SCHEDULE", {}).items()):
        jobs.append(
            ScheduledJob(
                name=name,
                task=entry["task"],
                schedule=maybe_schedule(entry["schedule"], app=app),
                args=tuple(entry.get("args") or ()),
                kwargs=dict(entry.get("kwargs") or {}),
            )
        )
    return jobs


def run_due_jobs(*, jobs: list[ScheduledJob], now: datetime | None = None, app=None) -> list[str]:
    """Run every job that is due (a job never run before is due at once); return their names.

    A failing job is logged and tried again at its next interval; it never stops the others.
    """
    from kamen.celery import app as celery_app

    app = app or celery_app
    now = now or timezone.now()
    ran = []
    for job in jobs:
        if job.last_run_at is not None:
            is_due, _ = job.schedule.is_due(job.last_run_at)
            if not is_due:
                continue
        job.last_run_at = now
        close_old_connections()
        try:
            app.tasks[job.task].apply(args=job.args, kwargs=job.kwargs, throw=True)
            job.runs += 1
        except Exception:
            job.failures += 1
            logger.exception("embedded_scheduler.job_failed", extra={"job": job.name})
        ran.append(job.name)
    return ran


def run_forever(*, tick_seconds: float = 5.0) -> None:
    jobs = jobs_from_settings()
    logger.info("embedded_scheduler.started", extra={"jobs": [job.name for job in jobs]})
    while True:
        run_due_jobs(jobs=jobs)
        time.sleep(tick_seconds)
