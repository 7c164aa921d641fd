"""Periodic jobs never overlap: two runs of one job at the same moment (a redelivered message, a
scheduler that woke up after losing its lock, a run by hand) do the work once (issue 25)."""

import threading

import pytest
from django.conf import settings
from django.db import connection

from kamen.celery import app
from kamen.periodic import exclusive_periodic_job


def test_every_scheduled_job_runs_exclusively():
    app.loader.import_default_modules()

    unguarded = [
        name
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if not getattr(app.tasks[entry["task"]].run, "runs_exclusively", False)
    ]

    assert unguarded == []


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_the_first_is_running_does_nothing():
    inside, release = threading.Event(), threading.Event()
    runs = []

    @exclusive_periodic_job
    def settle():
        runs.append(threading.current_thread().name)
        inside.set()
        release.wait(10)
        return "done"

    results = {}

    def first():
        results["first"] = settle()
        connection.close()

    worker = threading.Thread(target=first, name="first")
    worker.start()
    assert inside.wait(10)

    second = settle()  # another process's connection, while the first still runs

    release.set()
    worker.join(10)
    assert second is None and results["first"] == "done"
    assert runs == ["first"]
    # the lock went with the first run: the next period runs again
    assert settle() == "done"
    assert runs == ["first", "MainThread"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_run_frees_the_job_for_the_next_one():
    attempts = []

    @exclusive_periodic_job
    def sweep():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("supplier down")
        return len(attempts)

    with pytest.raises(RuntimeError):
        sweep()

    assert sweep() == 2
