"""Periodic jobs run one at a time across every host.

The scheduler (celery-redbeat, docs/adr) sends each job once per period, but a job can still
run twice at the same time: a worker that lost its broker connection gets the message again, a
paused scheduler wakes up after its lock passed to another host, a merchant re-runs a job by
hand. Every periodic job is therefore written to be safe to run twice in a row, and is wrapped
in ``exclusive_periodic_job`` so that two runs never overlap: the second finds the job's
PostgreSQL advisory lock taken and returns at once (the first is doing the same work).

A session-level lock, not a transaction-level one: jobs call services that commit in steps and
call suppliers and gateways, and no transaction may stay open across a network call. The lock
goes with the connection, so a worker that dies mid-job frees it. Behind a pooler in
transaction mode a session lock would stay on whichever server connection took it, so the lock
is then taken on the ``direct`` database (DATABASE_DIRECT_URL, PostgreSQL itself); the job's
own work still goes through the pooler (docs/adr/0015-beyond-one-machine.md).
"""

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connections

logger = logging.getLogger(__name__)

# The first half of the two-key advisory lock: periodic jobs, apart from every other lock.
_LOCK_SPACE = "kamen.periodic"


@contextmanager
def job_lock(name: str) -> Iterator[bool]:
    """True while this process holds the job's lock; False if another run holds it."""
    connection = connections["direct" if "direct" in connections else "default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", [_LOCK_SPACE, name])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", [_LOCK_SPACE, name])


def exclusive_periodic_job(function: Callable) -> Callable:
    """Run ``function`` only if no other run of it is in progress anywhere; else return None."""
    name = f"{function.__module__}.{function.__name__}"

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with job_lock(name) as acquired:
            if not acquired:
                logger.info("periodic.skipped_already_running", extra={"job": name})
                return None
            return function(*args, **kwargs)

    wrapper.runs_exclusively = True
    return wrapper
