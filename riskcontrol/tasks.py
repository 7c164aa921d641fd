"""Risk-control tasks (Celery): thin, safe to run twice (findings are once per day)."""

from celery import shared_task


@shared_task(acks_late=True)
def run_risk_scans_task():
    from .scans import run_scans

    return run_scans()
