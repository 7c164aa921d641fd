from django.urls import path

from . import views

app_name = "commissions"
urlpatterns = [
    path("payouts/notify/<str:method>/", views.payout_notify, name="payout-notify"),
    path("agent/wallet/", views.wallet, name="wallet"),
    path("agent/wallet/statements/", views.statements, name="statements"),
    path("agent/wallet/withdrawals/", views.withdrawals, name="withdrawals"),
    path(
        "agent/wallet/withdrawals/create/",
        views.withdrawal_create,
        name="withdrawal-create",
    ),
    path(
        "agent/wallet/accounts/create/",
        views.payout_account_create,
        name="payout-account-create",
    ),
    path("agent/wallet/tax/", views.tax_statements, name="tax-statements"),
    path(
        "agent/wallet/tax/<int:year>/<int:month>/",
        views.tax_certificate,
        name="tax-certificate",
    ),
]
