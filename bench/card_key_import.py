"""card_key_import_keys_per_s: 100,000 keys through validate + import (encryption and the
duplicate check included), timed from start to completed."""

import statistics
import time
from decimal import Decimal

KEYS = 100_000


def _one_run(run_number: int) -> float:
    from django.contrib.auth import get_user_model

    from catalog.models import Category, ImportStatus, Product, ProductType
    from catalog.services import (
        confirm_card_key_import,
        run_card_key_import,
        start_card_key_import,
        validate_card_key_import,
    )
    from kamen import background

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    category, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "bench"})
    product = Product.objects.create(
        category=category, name=f"bench {run_number}", product_type=ProductType.CARD_KEY, retail_price=Decimal("1.00")
    )
    text = "\n".join(f"B{run_number}-{n:08d},SECRET-{run_number}-{n:08d}-abcdefghijklmnop" for n in range(KEYS))
    # Call the jobs directly: the figure is the work, not the queue's latency.
    original = background.enqueue_bulk_job
    background.enqueue_bulk_job = lambda func, **kwargs: None
    import catalog.services.vault as vault

    vault.enqueue_bulk_job = background.enqueue_bulk_job
    try:
        started = time.perf_counter()
        import_job = start_card_key_import(product=product, actor=user, text=text, separator=",")
        validate_card_key_import(import_id=import_job.pk)
        import_job.refresh_from_db()
        confirm_card_key_import(import_job=import_job, actor=user)
        run_card_key_import(import_id=import_job.pk)
        elapsed = time.perf_counter() - started
    finally:
        background.enqueue_bulk_job = original
        vault.enqueue_bulk_job = original
    import_job.refresh_from_db()
    assert import_job.status == ImportStatus.COMPLETED and import_job.imported_count == KEYS, import_job.error_message
    return KEYS / elapsed


def run(repeats: int) -> dict[str, float]:
    rates = [_one_run(number) for number in range(repeats)]
    print(f"card_key_import_keys_per_s runs: {[round(rate) for rate in rates]}")
    return {"card_key_import_keys_per_s": round(statistics.median(rates), 1)}
