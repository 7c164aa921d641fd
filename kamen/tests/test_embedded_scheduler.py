from datetime import timedelta

import pytest
from celery import Celery
from django.utils import timezone

from kamen.scheduler import jobs_from_settings, run_due_jobs


@pytest.fixture
def counting_app(settings):
    app = Celery("scheduler-test", set_as_current=False)
    calls = []

    @app.task(name="test.count", shared=False)
    def count(*args, **kwargs):
        calls.append((args, kwargs))

    @app.task(name="test.explode", shared=False)
    def explode():
        raise RuntimeError("boom")

    settings.CELERY_BEAT_SCHEDULE = {
        "count-every-minute": {"task": "test.count", "schedule": 60.0, "args": ("daily",), "kwargs": {"n": 1}},
        "explode-every-minute": {"task": "test.explode", "schedule": 60.0},
    }
    return app, calls


def test_a_job_runs_at_once_then_waits_for_its_interval(counting_app):
    app, calls = counting_app
    jobs = jobs_from_settings(app=app)
    start = timezone.now()

    first = run_due_jobs(jobs=jobs, now=start, app=app)
    second = run_due_jobs(jobs=jobs, app=app)

    assert "count-every-minute" in first
    assert second == []
    assert calls == [(("daily",), {"n": 1})]


def test_a_failing_job_does_not_stop_the_others_and_is_retried_next_interval(counting_app):
    app, calls = counting_app
    jobs = jobs_from_settings(app=app)
    long_ago = timezone.now() - timedelta(minutes=5)

    run_due_jobs(jobs=jobs, now=long_ago, app=app)
    ran_again = run_due_jobs(jobs=jobs, app=app)

    explode = next(job for job in jobs if job.name == "explode-every-minute")
    assert explode.failures == 2
    assert sorted(ran_again) == ["count-every-minute", "explode-every-minute"]
    assert len(calls) == 2


def test_the_project_schedule_names_only_registered_tasks():
    from kamen.celery import app

    for job in jobs_from_settings():
        assert job.task in app.tasks, f"{job.name} names an unknown task {job.task}"
