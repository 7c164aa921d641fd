"""Stock reads: the console's stock overview and whether a product sells a reusable key.

A ``card_key`` product is *reusable* (循环卡密) exactly when it has an active ReusableCardKey:
every buyer then receives the same secret, counted against the key's sales cap, and the
product's card-key rows are not used for delivery.
"""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import CardKey, CardKeyStatus, Product, ProductType, ReusableCardKey, StockAlert

__all__ = [
    "is_reusable_key_product",
    "reusable_key_remaining",
    "stock_overview",
    "stock_overview_queryset",
]


def _active_reusable_key(product: Product) -> ReusableCardKey | None:
    if product.product_type != ProductType.CARD_KEY:
        return None
    # Uses the row when the caller loaded it (select_related), else asks the database; a missing
    # row raises RelatedObjectDoesNotExist, an AttributeError.
    reusable: ReusableCardKey | None = getattr(product, "reusable_key", None)
    return reusable if reusable is not None and reusable.is_active else None


def is_reusable_key_product(product: Product) -> bool:
    """True when fulfilment must use ``claim_reusable_key`` rather than ``claim_card_keys``."""
    return _active_reusable_key(product) is not None


def reusable_key_remaining(product: Product) -> int | None:
    """How many more units the reusable key may sell: None when its cap is unlimited, 0 when
    the product has no active reusable key."""
    reusable = _active_reusable_key(product)
    if reusable is None:
        return 0
    if reusable.sales_cap is None:
        return None
    return max(reusable.sales_cap - reusable.sold_count, 0)


def _key_count(status: str, condition: Q | None = None) -> Coalesce:
    """A correlated count per product. Each one is an index(-only) scan of that product's keys
    ((product, status) or the partial index on available keys), so the page stays fast with
    millions of keys; a join + GROUP BY would sort every key row with the product's columns."""
    keys = CardKey.objects.filter(product=OuterRef("pk"), status=status)
    if condition is not None:
        keys = keys.filter(condition)
    return Coalesce(
        Subquery(
            keys.order_by().values("product").annotate(total=Count("id")).values("total")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def stock_overview_queryset(*, now=None) -> QuerySet[Product]:
    """Every card-key product with its key counts by state, its reusable key and its open
    alert, in ONE query.

    ``available_count`` is what can still be sold: available and not expired. Available keys
    past their expiry are never claimed and are counted apart as ``expired_count``.
    """
    now = now or timezone.now()
    return (
        Product.objects.filter(product_type=ProductType.CARD_KEY)
        .select_related("category", "reusable_key")
        .annotate(
            available_count=_key_count(
                CardKeyStatus.AVAILABLE, Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            ),
            expired_count=_key_count(CardKeyStatus.AVAILABLE, Q(expires_at__lte=now)),
            reserved_count=_key_count(CardKeyStatus.RESERVED),
            sold_count=_key_count(CardKeyStatus.SOLD),
            void_count=_key_count(CardKeyStatus.VOID),
            open_alert_at=Subquery(
                StockAlert.objects.filter(product=OuterRef("pk"), resolved_at__isnull=True)
                .order_by("-created_at")
                .values("created_at")[:1]
            ),
        )
        .order_by("category__tree_id", "category__lft", "sort_order", "id")
    )


def stock_overview(*, now=None) -> list[Product]:
    """The rows of the console's stock page, each with ``reusable`` (the active reusable key or
    None), ``watched_level`` (what the threshold is compared with; None: nothing to watch) and
    ``is_low``. One query whatever the number of products."""
    rows = list(stock_overview_queryset(now=now))
    for product in rows:
        product.reusable = _active_reusable_key(product)
        stored = getattr(product, "reusable_key", None)
        product.has_inactive_reusable = stored is not None and not stored.is_active
        if product.reusable is not None:
            product.watched_level = reusable_key_remaining(product)
        else:
            product.watched_level = product.available_count
        product.is_low = product.watched_level is not None and product.watched_level <= product.low_stock_threshold
    return rows
