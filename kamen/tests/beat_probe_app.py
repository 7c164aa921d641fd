"""The project's Celery app as `celery -A kamen beat` loads it (scheduler, lock and Redis from
the settings), with one probe job in place of the real schedule, sent to a queue of its own
and kept under a key prefix of its own, so the scheduler test disturbs nothing else."""

import os

from kamen.celery import app

app.conf.beat_schedule = {
    "scheduler-probe": {
        "task": "kamen.tests.scheduler_probe",
        "schedule": float(os.environ["PROBE_PERIOD_SECONDS"]),
        "options": {"queue": os.environ["PROBE_QUEUE"]},
    }
}
