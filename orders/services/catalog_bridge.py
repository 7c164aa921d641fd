"""Catalog services the pipeline needs that another helper is still building (reusable keys,
direct top-ups). Looked up at call time so the pipeline works before and after they land;
tests monkeypatch them on ``catalog.services`` / ``catalog.selectors``."""

import catalog.selectors as catalog_selectors
import catalog.services as catalog_services
from catalog.models import Product, ReusableCardKey


def is_reusable_key_product(product: Product) -> bool:
    check = getattr(catalog_selectors, "is_reusable_key_product", None)
    if check is not None:
        return bool(check(product))
    return ReusableCardKey.objects.filter(product=product, is_active=True).exists()


def claim_reusable_key(*, product: Product, quantity: int, reference: str) -> str:
    claim = getattr(catalog_services, "claim_reusable_key", None)
    if claim is None:
        raise NotImplementedError("catalog.services.claim_reusable_key is not available yet")
    return claim(product=product, quantity=quantity, reference=reference)


def send_top_up(*, product: Product, reference: str, target: str, quantity: int, **options):
    """``options``: ``retry_refused`` (a back-order tried again), passed only when set."""
    send = getattr(catalog_services, "send_top_up", None)
    if send is None:
        raise NotImplementedError("catalog.services.send_top_up is not available yet")
    return send(product=product, reference=reference, target=target, quantity=quantity, **options)
