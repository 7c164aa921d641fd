"""Helpers shared by the benchmarks: a product stocked through the real import path."""

import contextlib
from decimal import Decimal


@contextlib.contextmanager
def jobs_called_directly():
    """Bulk jobs are called by the benchmark itself: the figure is the work, not the queue's latency."""
    from catalog.services import vault
    from kamen import background

    original = background.enqueue_bulk_job
    background.enqueue_bulk_job = vault.enqueue_bulk_job = lambda func, **kwargs: None
    try:
        yield
    finally:
        background.enqueue_bulk_job = vault.enqueue_bulk_job = original


def bench_user():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    return user


def card_key_product(name: str, **fields):
    from catalog.models import Category, Product, ProductType

    category, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "bench"})
    return Product.objects.create(
        category=category, name=name, product_type=ProductType.CARD_KEY, retail_price=Decimal("1.00"), **fields
    )


def import_keys(product, count: int, prefix: str) -> int:
    """Stock ``count`` keys through validate → confirm → import; returns how many were stored."""
    from catalog.models import ImportStatus
    from catalog.services import (
        confirm_card_key_import,
        run_card_key_import,
        start_card_key_import,
        validate_card_key_import,
    )

    user = bench_user()
    text = "\n".join(f"{prefix}-{n:08d},SECRET-{prefix}-{n:08d}-abcdefghijklmnop" for n in range(count))
    with jobs_called_directly():
        import_job = start_card_key_import(product=product, actor=user, text=text, separator=",")
        validate_card_key_import(import_id=import_job.pk)
        confirm_card_key_import(import_job=import_job, actor=user)
        run_card_key_import(import_id=import_job.pk)
    import_job.refresh_from_db(fields=["status", "imported_count", "error_message"])
    assert import_job.status == ImportStatus.COMPLETED, import_job.error_message
    return import_job.imported_count
