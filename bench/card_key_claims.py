"""card_key_claims_per_s: 8 concurrent claimers (processes, each with its own connection) take one
key at a time from one hot product through catalog.services.claim_card_keys, the path
fulfilment uses. The table around it holds 100,000 keys (the hot product and a few others) so the
plan is the one production sees. Afterwards: no key may have been claimed twice.
"""

import multiprocessing
import os
import statistics
import time

CLAIMERS = 8
SECONDS = float(os.environ.get("BENCH_CLAIM_SECONDS", "5"))
HOT_KEYS = 60_000  # topped up before a repeat when fewer than REFILL_BELOW are left
REFILL_BELOW = 40_000
OTHER_PRODUCTS, OTHER_KEYS = 4, 10_000
TARGETS = {"card_key_claims_per_s": 1_500}


def _claimer(product_id: int, start_at: float, stop_at: float) -> list[int]:
    """One claimer process: claim a key at a time until ``stop_at``; returns the claimed ids."""
    from catalog.models import Product
    from catalog.services import InsufficientStock, claim_card_keys

    product = Product.objects.get(pk=product_id)
    claimed: list[int] = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        try:
            claimed.extend(key.pk for key in claim_card_keys(product=product, quantity=1))
        except InsufficientStock:
            raise RuntimeError("the hot product ran out of keys mid-run: raise REFILL_BELOW") from None
    return claimed


def _claimer_entry(arguments: tuple) -> list[int]:
    from django.db import connection

    try:
        return _claimer(*arguments)
    finally:
        connection.close()


def _one_run(product_id: int, pool) -> tuple[float, list[int]]:
    start_at = time.time() + 1.0  # every process connected and waiting
    stop_at = start_at + SECONDS
    results = pool.map(_claimer_entry, [(product_id, start_at, stop_at)] * CLAIMERS)
    ended = time.time()
    claimed = [key_id for result in results for key_id in result]
    return len(claimed) / (ended - start_at), claimed


def run(repeats: int) -> dict[str, float]:
    from django.db import connection, connections

    from bench.support import card_key_product, import_keys
    from catalog.models import CardKey, CardKeyStatus

    hot = card_key_product("claims hot")
    for number in range(OTHER_PRODUCTS):
        import_keys(card_key_product(f"claims other {number}"), OTHER_KEYS, f"O{number}")
    import_keys(hot, HOT_KEYS, "H")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {CardKey._meta.db_table}")
    connections.close_all()  # the claimers are forked: none may share this process's connection
    rates: list[float] = []
    claimed: list[int] = []
    with multiprocessing.get_context("fork").Pool(CLAIMERS) as pool:
        for repeat in range(repeats):
            if CardKey.objects.filter(product=hot, status=CardKeyStatus.AVAILABLE).count() < REFILL_BELOW:
                import_keys(hot, HOT_KEYS, f"H{repeat}")
                connections.close_all()
            rate, ids = _one_run(hot.pk, pool)
            rates.append(rate)
            claimed += ids
    sold = CardKey.objects.filter(product=hot, status=CardKeyStatus.SOLD).count()
    if len(claimed) != len(set(claimed)) or sold != len(claimed):
        raise AssertionError(f"claims overlapped: {len(claimed)} claimed, {len(set(claimed))} distinct, {sold} sold")
    print(f"card_key_claims_per_s runs ({CLAIMERS} claimers, {SECONDS:g} s each): {[round(rate) for rate in rates]}; "
          f"{len(claimed)} keys claimed, each once")
    return {"card_key_claims_per_s": round(statistics.median(rates), 1)}
