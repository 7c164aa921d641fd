from django.urls import path

from . import views, views_deposit, views_wallet

app_name = "orders"
urlpatterns = [
    path("buy/<int:pk>/", views.checkout, name="checkout"),
    path("orders/<str:order_no>/", views.order_detail, name="order-detail"),
    path("orders/<str:order_no>/status.json", views.order_status, name="order-status"),
    path("orders/<str:order_no>/pay/", views.order_pay, name="order-pay"),
    path("orders/<str:order_no>/pay/wallet/", views_wallet.order_pay_wallet, name="order-pay-wallet"),
    path("agent/wallet/pay/", views_wallet.agent_wallet_pay, name="agent-wallet-pay"),
    path(
        "agent/wallet/pay/<str:order_no>/",
        views_wallet.agent_wallet_pay_order,
        name="agent-wallet-pay-order",
    ),
    path("agent/wallet/top-up/", views_wallet.agent_top_up, name="agent-top-up"),
    path("agent/deposit/", views_deposit.agent_deposit, name="agent-deposit"),
    path("agent/stock/", views_wallet.agent_stock, name="agent-stock"),
    path("agent/stock/<str:purchase_no>/", views_wallet.agent_stock_detail, name="agent-stock-detail"),
    path("orders/<str:order_no>/sync/", views.order_sync, name="order-sync"),
    path("pay/notify/<str:gateway>/", views.payment_notify, name="payment-notify"),
    path("pay/sandbox/<str:trade_no>/", views.sandbox_cashier, name="sandbox-cashier"),
]
