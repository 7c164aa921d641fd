from django.urls import path

from . import views

app_name = "orders"
urlpatterns = [
    path("buy/<int:pk>/", views.checkout, name="checkout"),
    path("orders/<str:order_no>/", views.order_detail, name="order-detail"),
    path("orders/<str:order_no>/status.json", views.order_status, name="order-status"),
    path("orders/<str:order_no>/pay/", views.order_pay, name="order-pay"),
    path("orders/<str:order_no>/sync/", views.order_sync, name="order-sync"),
    path("pay/notify/<str:gateway>/", views.payment_notify, name="payment-notify"),
    path("pay/sandbox/<str:trade_no>/", views.sandbox_cashier, name="sandbox-cashier"),
]
