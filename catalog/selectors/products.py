__all__ = ["products_on_shelf"]

from django.db.models import QuerySet

from catalog.models import Product


def products_on_shelf() -> QuerySet[Product]:
    return Product.objects.filter(is_on_shelf=True, category__is_active=True).select_related("category")
