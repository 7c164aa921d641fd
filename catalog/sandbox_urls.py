"""The sandbox supplier's HTTP API, served by Kamen itself for the demo (see catalog/suppliers)."""

from django.urls import path

from . import sandbox_views

app_name = "sandbox-supplier"

urlpatterns = [
    path("orders/", sandbox_views.place_order, name="orders"),
    path("orders/query/", sandbox_views.query_order, name="orders-query"),
    path("prices/", sandbox_views.prices, name="prices"),
    path("balance/", sandbox_views.balance, name="balance"),
]
