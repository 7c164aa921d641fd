"""The shop (read-only until checkout arrives with the orders issue). Nothing is cached, so a
price or shelf change shows on the next page load."""

from django.http import Http404
from django.shortcuts import render
from django.utils.safestring import mark_safe

from . import selectors
from .validation import sanitize_description


def shop_home(request):
    return render(request, "catalog/shop_home.html", {"sections": selectors.categories_with_products_on_shelf()})


def product_detail(request, pk: int):
    product = selectors.product_on_shelf(pk=pk)
    if product is None:
        raise Http404
    # Saved descriptions are already clean; cleaning again at render time also covers rows
    # written before sanitising existed or by hand.
    description = mark_safe(sanitize_description(product.description))
    return render(request, "catalog/shop_product.html", {"product": product, "description": description})
