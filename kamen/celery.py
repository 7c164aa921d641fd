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


@app.on_after_configure.connect
def _redbeat_settings_by_their_own_names(sender, source, **kwargs):
    """celery-redbeat asks whether its settings exist by their bare names (``redbeat_redis_url``)
    and the CELERY_ namespace hides them: it then warned at every beat start that it "falls
    back" to the broker's URL and options, which reads as a misconfiguration (and 2.5 stops
    falling back). Each CELERY_REDBEAT_* setting is also given its bare name."""
    for key in [key for key in source.keys() if key.startswith("CELERY_REDBEAT_")]:
        source[key.removeprefix("CELERY_").lower()] = source[key]


# --- The database connection between tasks (docs/adr/0014) ---------------------------------------
from celery.signals import task_postrun, task_prerun  # noqa: E402


@task_prerun.connect
@task_postrun.connect
def _database_as_between_requests(sender=None, **kwargs):
    """As Django does at each request's start and end: a connection older than CONN_MAX_AGE,
    left outside autocommit or broken by an error is closed (the next query opens a new one), the
    others kept and health-checked at their next use. Celery's own fix-up would close it around
    every task; CELERY_DB_REUSE_MAX tells it to keep it."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # in a request: Django's own signals look after it
    from django.db import close_old_connections

    close_old_connections()


# --- Worker health (kamen.worker_health, ADR 0013) --------------------------------------------
# kamen.worker_health is imported when used: ``python -m kamen.worker_health check`` must not
# find it imported already by this package's __init__.
from celery.signals import celeryd_init, worker_ready, worker_shutdown  # noqa: E402


@app.task(name="kamen.worker_health.heartbeat", ignore_result=True, acks_late=False, soft_time_limit=20, time_limit=30)
def heartbeat(*, hostname: str, sent_at: float) -> None:
    from kamen.worker_health import record_heartbeat

    record_heartbeat(hostname=hostname, sent_at=sent_at)


@celeryd_init.connect
def _fulfilment_visibility(sender=None, conf=None, options=None, **kwargs):
    """A worker consuming ``fulfilment`` keeps its unacknowledged messages under keys of its
    own with a short visibility timeout, so a killed worker's fulfilment messages come back in
    about three minutes; the other workers (``io``: slow network calls) keep the long default and
    never restore them early. The Redis transport reads both from the consumer's options."""
    queues = (options or {}).get("queues") or []
    if isinstance(queues, str):
        queues = queues.split(",")
    if "fulfilment" not in {queue.strip() for queue in queues}:
        return
    from django.conf import settings

    conf.broker_transport_options = {
        **(conf.broker_transport_options or {}),
        **settings.CELERY_FULFILMENT_TRANSPORT_OPTIONS,
    }


@worker_ready.connect
def _start_watchdog(sender=None, **kwargs):
    from kamen.worker_health import on_worker_ready

    on_worker_ready(sender=sender)


@worker_shutdown.connect
def _stop_watchdog(sender=None, **kwargs):
    from kamen.worker_health import on_worker_shutdown

    on_worker_shutdown()
