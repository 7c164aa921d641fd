"""The sandbox supplier's HTTP API, served by Kamen itself for the demo (see catalog/suppliers)."""

urlpatterns: list = []
