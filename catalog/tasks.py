"""Scheduled catalog jobs (Celery beat). Thin: each calls one service."""

from celery import shared_task

from kamen.periodic import exclusive_periodic_job


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
@exclusive_periodic_job
def check_stock_levels_task():
    from .services import check_stock_levels

    check_stock_levels()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
@exclusive_periodic_job
def sync_supplier_prices_task():
    """Prices, stock and balances of every active supplier; products whose cost reached the price go off the shelf."""
    from .services import sync_all_suppliers

    sync_all_suppliers()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=3)
@exclusive_periodic_job
def reconcile_upstreams_task():
    """Every upstream Kamen's catalog and balance, in case a webhook was lost (hourly)."""
    from .services.upstream_sync import reconcile_all_upstreams

    reconcile_all_upstreams()
