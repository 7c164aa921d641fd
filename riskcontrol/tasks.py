"""Risk-control tasks (Celery): thin, safe to run twice (findings are once per day)."""

from celery import shared_task

from kamen.periodic import exclusive_periodic_job


@shared_task(acks_late=True)
@exclusive_periodic_job
def run_risk_scans_task():
    from .scans import run_scans

    return run_scans()
