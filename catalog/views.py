from django.shortcuts import render

from . import selectors


def shop_home(request):
    return render(request, "catalog/shop_home.html", {"products": selectors.products_on_shelf()})
