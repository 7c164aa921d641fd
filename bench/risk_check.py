"""risk_check_us: the cost of the risk check per order with every default rule on (median µs).

The table holds 100,000 earlier checkout signals (spread over 10,000 IPs, devices and buyers,
the last day) plus distributors' log-in signals and a blacklist with networks, so the indexed
look-ups work on realistic volumes. Each measured checkout is attributed to a distributor with
an upline, so the self-referral rule runs too.
"""

import random
import statistics
import time
from datetime import timedelta
from decimal import Decimal

HISTORY = 100_000
CHECKS = 500
TARGETS = {"risk_check_us": ("<", 2_000)}


def _setup():
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from catalog.models import Category, Product, ProductType
    from distribution.models import Distributor, Grade
    from riskcontrol.models import BlacklistEntry, BlacklistKind, RiskSignal, SignalKind
    from riskcontrol.rules import ensure_default_rules

    ensure_default_rules()
    category, _ = Category.objects.get_or_create(
        slug="bench-risk", defaults={"name": "bench risk"}
    )
    product = Product.objects.create(
        category=category,
        name="bench risk",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
    )
    grade = Grade.objects.create(name="bench-risk", rank=99)
    users = get_user_model().objects
    root = Distributor.objects.create(
        user=users.create(username="bench-risk-root"),
        grade=grade,
        invite_code="BRROOT",
        status="active",
    )
    child = Distributor.objects.create(
        user=users.create(username="bench-risk-child"),
        grade=grade,
        invite_code="BRCHILD",
        status="active",
        parent=root,
    )
    rng = random.Random(7)
    now = timezone.now()
    signals = [
        RiskSignal(
            kind=SignalKind.CHECKOUT,
            ip=f"10.{n % 40}.{(n // 40) % 250}.{n % 250}",
            device_id=f"{n % 10_000:032x}",
            contact_index=f"{n % 10_000:064x}",
            product_id=product.pk,
            amount=Decimal("10.00"),
            distributor_id=child.pk if n % 100 == 0 else None,
            verdict="allow",
        )
        for n in range(HISTORY)
    ]
    RiskSignal.objects.bulk_create(signals, batch_size=5000)
    # Spread them over the last day.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE riskcontrol_risksignal SET created_at = %s - (random() * interval '1 day')",
            [now],
        )
        cursor.execute("ANALYZE riskcontrol_risksignal")
        # The distributor's day total, which the risk check keeps as checkouts come in (these
        # came in bulk), so the daily limit sees the day's real figure.
        day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        cursor.execute(
            "INSERT INTO riskcontrol_distributordaytotal (distributor_id, day, total)"
            " SELECT distributor_id, %s, sum(amount) FROM riskcontrol_risksignal"
            " WHERE kind = 'checkout' AND distributor_id IS NOT NULL AND created_at >= %s"
            " GROUP BY distributor_id"
            # other benchmarks in the same database may have checked out today already
            " ON CONFLICT (distributor_id, day) DO UPDATE SET total = EXCLUDED.total",
            [day_start.date(), day_start],
        )
    RiskSignal.objects.bulk_create(
        [
            RiskSignal(
                kind=SignalKind.LOGIN,
                distributor_id=distributor.pk,
                ip="192.0.2.10",
                device_id="f" * 32,
            )
            for distributor in (root, child)
        ]
    )
    BlacklistEntry.objects.bulk_create(
        [
            BlacklistEntry(
                kind=BlacklistKind.IP,
                network=f"172.{n}.0.0",
                prefix_length=16,
                display_value=f"172.{n}.0.0/16",
                reason="bench",
            )
            for n in range(16, 32)
        ]
        + [
            BlacklistEntry(
                kind=BlacklistKind.DEVICE,
                value_index=f"{n:032x}",
                display_value="x",
                reason="bench",
                expires_at=now + timedelta(days=1),
            )
            for n in range(50_000, 50_500)
        ]
    )
    return product, child, rng


def run(repeats: int) -> dict[str, float]:
    from riskcontrol.services.assessment import assess_checkout

    product, distributor, rng = _setup()
    attribution = {"matched": True, "chain": [distributor.parent_id]}
    medians = []
    for _repeat in range(max(repeats, 1)):
        timings = []
        for _n in range(CHECKS):
            n = rng.randrange(10_000)
            started = time.perf_counter()
            assess_checkout(
                product=product,
                quantity=1,
                contact=f"buyer{n}@example.com",
                buyer_ip=f"10.{n % 40}.{(n // 40) % 250}.{n % 250}",
                amount=Decimal("10.00"),
                distributor_id=distributor.pk,
                device_id=f"{n:032x}",
                device_hash="0" * 32,
                attribution=attribution,
            )
            timings.append((time.perf_counter() - started) * 1_000_000)
        medians.append(statistics.median(timings))
    return {"risk_check_us": statistics.median(medians)}
