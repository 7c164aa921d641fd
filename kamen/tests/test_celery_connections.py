"""A Celery worker keeps its database connection from task to task (issue 15 §2, ADR 0014):
Celery's Django fix-up closed it around every task, so every task connected anew and forked a
new PostgreSQL backend. Between tasks the connection is checked as Django checks it between
requests, so one the server dropped is replaced and the next task still works."""

import psycopg
import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from kamen.celery import _database_as_between_requests, app


class _Worker:
    """What a prefork worker runs around each task: the fix-up's handlers and Kamen's."""

    def __init__(self):
        self.fixup = DjangoWorkerFixup(app)
        self.task = app.tasks["kamen.worker_health.heartbeat"]

    def run(self, body):
        self.fixup.on_task_prerun(sender=self.task)
        _database_as_between_requests(sender=self.task)
        try:
            return body()
        finally:
            self.fixup.on_task_postrun(sender=self.task)
            _database_as_between_requests(sender=self.task)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_tasks_one_after_another_use_one_database_connection():
    # given a worker with the project's settings
    worker = _Worker()

    # when it runs five tasks that each read the database
    backends = {worker.run(_backend_pid) for _task in range(5)}

    # then all five were served by one PostgreSQL backend (before: five connections, five forks)
    assert len(backends) == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_between_tasks_is_replaced_for_the_next_task():
    # given a worker whose connection PostgreSQL ends between two tasks (a restart, an admin)
    worker = _Worker()
    first = worker.run(_backend_pid)
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings.get("USER") or None,
        password=settings.get("PASSWORD") or None,
        host=settings.get("HOST") or None,
        port=settings.get("PORT") or None,
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [first])

    # when the next task reads the database
    second = worker.run(_backend_pid)

    # then it works, on a new connection
    assert second != first
