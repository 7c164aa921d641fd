"""After the sale: buyer look-up and vouchers, and the redemption counter in the console."""

from django.urls import path

from . import views_lookup, views_redemption

app_name = "postsale"
urlpatterns = [
    path("query/", views_lookup.order_lookup, name="order-lookup"),
    path("query/results/", views_lookup.order_lookup_results, name="order-lookup-results"),
    path("query/orders/<str:order_no>/", views_lookup.order_open, name="order-open"),
    path("query/orders/<str:order_no>/vouchers/", views_lookup.order_vouchers, name="order-vouchers"),
    path("query/vouchers/<int:pk>/qr.png", views_lookup.voucher_qr, name="voucher-qr"),
    path("query/vouchers/<int:pk>/dynamic-code/", views_lookup.voucher_dynamic_code, name="voucher-dynamic-code"),
    path("console/redeem/", views_redemption.redeem, name="voucher-redeem"),
]
