"""Catalog reads for the shop and the console. Nothing here is cached: a price or shelf change
must show on the next page load."""

from dataclasses import dataclass

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from catalog import sql as catalog_sql
from catalog.models import (
    CardKey,
    CardKeyStatus,
    Category,
    Product,
    ProductCustomField,
    ProductImage,
    ProductType,
    ReusableCardKey,
)
from kamen.db import fetch_rows, instance_from_row, instances_from_arrays, prefetched

__all__ = [
    "StockState",
    "available_key_count",
    "categories_with_products_on_shelf",
    "console_dashboard",
    "product_names",
    "product_on_shelf",
    "product_stock_state",
    "product_to_buy",
    "products_for_console",
    "products_on_shelf",
    "with_available_count",
    "with_stock_counts",
]


def _card_key_count(status: str) -> Subquery:
    """A correlated count per product: avoids multiplying rows when several counts are joined."""
    return Coalesce(
        Subquery(
            CardKey.objects.filter(product=OuterRef("pk"), status=status)
            .order_by()
            .values("product")
            .annotate(total=Count("id"))
            .values("total")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def with_stock_counts(queryset: QuerySet[Product]) -> QuerySet[Product]:
    return queryset.annotate(
        available_count=_card_key_count(CardKeyStatus.AVAILABLE),
        reserved_count=_card_key_count(CardKeyStatus.RESERVED),
        sold_count=_card_key_count(CardKeyStatus.SOLD),
    )


def with_available_count(queryset: QuerySet[Product]) -> QuerySet[Product]:
    """The shop's count: what the buyer sees is the available keys only (reserved and sold are
    the console's, and each is another count over the product's keys on every page view)."""
    return queryset.annotate(available_count=_card_key_count(CardKeyStatus.AVAILABLE))


def products_for_console() -> QuerySet[Product]:
    """The product list of the console: prices, margin and stock counts in one query."""
    return with_stock_counts(
        Product.objects.select_related("category").annotate(
            margin=ExpressionWrapper(
                F("retail_price") - F("cost_price"),
                output_field=DecimalField(max_digits=14, decimal_places=2),
            )
        )
    )


def products_on_shelf() -> QuerySet[Product]:
    return (
        Product.objects.filter(is_on_shelf=True, category__is_active=True)
        .select_related("category", "reusable_key")
        .prefetch_related(Prefetch("images", queryset=ProductImage.objects.order_by("sort_order", "id")))
    )


@dataclass(frozen=True)
class StockState:
    in_stock: bool
    label: str
    available: int | None  # None: not counted (top-ups, manual delivery)


def _state_for(product: Product, available: int | None) -> StockState:
    if available is None:
        return StockState(True, str(_("有货")), None)
    if available <= 0:
        return StockState(False, str(_("缺货")), 0)
    if available <= product.low_stock_threshold:
        return StockState(True, str(_("库存紧张")), available)
    return StockState(True, str(_("有货")), available)


def _reusable_remaining(product: Product) -> int | None:
    reusable = getattr(product, "reusable_key", None)
    if reusable is None or not reusable.is_active:
        return None
    if reusable.sales_cap is None:
        return -1
    return max(reusable.sales_cap - reusable.sold_count, 0)


def product_stock_state(product: Product) -> StockState:
    """What the buyer sees: in stock, running low, or sold out."""
    if product.product_type == ProductType.CARD_KEY:
        if product.is_sourced_upstream and product.upstream_stock is None:
            return StockState(True, str(_("有货")), None)  # bought upstream once paid, not counted there
        remaining = _reusable_remaining(product)
        if remaining == -1:
            return StockState(True, str(_("有货")), None)
        if remaining is not None:
            return _state_for(product, remaining)
        available = getattr(product, "available_count", None)
        if available is None:
            available = product.card_keys.filter(status=CardKeyStatus.AVAILABLE).count()
        if product.upstream_stock is not None:  # docked: the upstream's keys count as ours
            available += product.upstream_stock
        return _state_for(product, available)
    if product.product_type == ProductType.BUNDLE:
        items = list(product.bundle_items.select_related("component"))
        if not items:
            return StockState(False, str(_("缺货")), 0)
        counts = dict(
            CardKey.objects.filter(
                product__in=[
                    item.component_id for item in items if item.component.product_type == ProductType.CARD_KEY
                ],
                status=CardKeyStatus.AVAILABLE,
            )
            .values_list("product")
            .annotate(total=Count("id"))
            .order_by()
        )
        sets = [
            counts.get(item.component_id, 0) // item.quantity
            for item in items
            if item.component.product_type == ProductType.CARD_KEY
        ]
        if any(not item.component.is_on_shelf for item in items):
            return StockState(False, str(_("缺货")), 0)
        return _state_for(product, min(sets)) if sets else StockState(True, str(_("有货")), None)
    return StockState(True, str(_("有货")), None)


def categories_with_products_on_shelf() -> list[tuple[Category, list[Product]]]:
    """Active categories (tree order) with their on-shelf products, each with a stock state."""
    products = list(
        with_available_count(products_on_shelf()).order_by("category__tree_id", "category__lft", "sort_order", "id")
    )
    grouped: dict[int, tuple[Category, list[Product]]] = {}
    for product in products:
        product.stock_state = product_stock_state(product)
        grouped.setdefault(product.category_id, (product.category, []))[1].append(product)
    return list(grouped.values())


def product_on_shelf(*, pk: int) -> Product | None:
    """The product page's product: its row with its category and reusable key, its images and
    custom fields (prefetched, in their order), and for a card-key product the available keys
    counted, as ``products_on_shelf()`` would give them, in one prepared statement (the page is
    the shop's busiest; building its three ORM queries cost more CPU than running them,
    ADR 0014)."""
    rows = fetch_rows(catalog_sql.product_page(), {"product": pk})
    if not rows:
        return None
    product = _product_from_page_row(rows[0])
    product.stock_state = product_stock_state(product)
    return product


def _product_from_page_row(row) -> Product:
    """The instances the ORM would build from ``catalog_sql.product_page``'s row, with the
    related caches ``select_related`` and ``prefetch_related`` would set."""
    product = instance_from_row(Product, row)
    start = len(Product._meta.concrete_fields)
    category = instance_from_row(Category, row, start)
    Product.category.field.set_cached_value(product, category)
    start += len(Category._meta.concrete_fields)
    reusable = instance_from_row(ReusableCardKey, row, start) if row[start] is not None else None
    Product.reusable_key.related.set_cached_value(product, reusable)
    if reusable is not None:
        ReusableCardKey.product.field.set_cached_value(reusable, product)
    start += len(ReusableCardKey._meta.concrete_fields)
    if product.product_type == ProductType.CARD_KEY:
        product.available_count = row[start]
    start += 1
    for name, model in (("images", ProductImage), ("custom_fields", ProductCustomField)):
        related = instances_from_arrays(model, row, start)
        start += len(model._meta.concrete_fields)
        for instance in related:
            model.product.field.set_cached_value(instance, product)
        prefetched(product, name, related)
    return product


def available_key_count(*, product_id: int) -> int:
    ((count,),) = fetch_rows(catalog_sql.AVAILABLE_COUNT, [product_id])
    return count


def product_to_buy(*, pk: int) -> Product | None:
    """The product a checkout posts to, if it is on the shelf: what ``place_order`` reads (its
    own fields, the reusable key) and nothing a page shows (images, stock counts)."""
    on_shelf = Product.objects.filter(pk=pk, is_on_shelf=True, category__is_active=True)
    return on_shelf.select_related("reusable_key").first()


def console_dashboard() -> dict[str, int]:
    """The figures on the console's front page, in two queries."""
    counts = Product.objects.aggregate(
        on_shelf=Count("id", filter=Q(is_on_shelf=True)),
        off_shelf=Count("id", filter=Q(is_on_shelf=False)),
    )
    card_key_products = with_stock_counts(
        Product.objects.filter(is_on_shelf=True, product_type=ProductType.CARD_KEY, reusable_key__isnull=True)
    )
    counts["out_of_stock"] = card_key_products.filter(available_count=0).count()
    counts["low_stock"] = card_key_products.filter(
        available_count__gt=0, available_count__lte=F("low_stock_threshold")
    ).count()
    return counts


def product_names(product_ids) -> dict[int, str]:
    """{product id: name} of the products among ``product_ids`` (reports label rows by product)."""
    return dict(Product.objects.filter(pk__in=list(product_ids)).values_list("pk", "name"))
