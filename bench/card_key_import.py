"""card_key_import_keys_per_s: 100,000 keys through validate + import (encryption and the
duplicate check included), timed from start to completed."""

import statistics
import time

from bench.support import bench_user, card_key_product, jobs_called_directly

KEYS = 100_000
TARGETS = {"card_key_import_keys_per_s": 20_000}


def _one_run(run_number: int) -> float:
    from catalog.models import ImportStatus
    from catalog.services import (
        confirm_card_key_import,
        run_card_key_import,
        start_card_key_import,
        validate_card_key_import,
    )

    user = bench_user()
    product = card_key_product(f"bench {run_number}")
    text = "\n".join(f"B{run_number}-{n:08d},SECRET-{run_number}-{n:08d}-abcdefghijklmnop" for n in range(KEYS))
    with jobs_called_directly():
        started = time.perf_counter()
        import_job = start_card_key_import(product=product, actor=user, text=text, separator=",")
        validate_card_key_import(import_id=import_job.pk)
        import_job.refresh_from_db()
        confirm_card_key_import(import_job=import_job, actor=user)
        run_card_key_import(import_id=import_job.pk)
        elapsed = time.perf_counter() - started
    import_job.refresh_from_db()
    assert import_job.status == ImportStatus.COMPLETED and import_job.imported_count == KEYS, import_job.error_message
    return KEYS / elapsed


def run(repeats: int) -> dict[str, float]:
    rates = [_one_run(number) for number in range(repeats)]
    print(f"card_key_import_keys_per_s runs: {[round(rate) for rate in rates]}")
    return {"card_key_import_keys_per_s": round(statistics.median(rates), 1)}
