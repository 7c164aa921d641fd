from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommissionsConfig(AppConfig):
    name = "commissions"
    verbose_name = _("佣金")

    def ready(self):
        from distribution.views import add_dashboard_panel
        from kamen.encrypted_fields import register_encrypted_field
        from kamen.setting_checks import register_setting_check
        from riskcontrol.services.assessment import register_commission_freezer

        from .models import PayoutAccount
        from .services.lifecycle import freeze_commissions
        from .services.rules import setting_change_clashes
        from .views import wallet_panel

        register_encrypted_field(
            PayoutAccount,
            "account_ciphertext",
            "account_key_id",
            lambda account: f"payout-account:{account.distributor_id}".encode(),
        )

        # grades, products and sub-store settings are checked against the rule guard
        register_setting_check(setting_change_clashes)
        add_dashboard_panel(wallet_panel)
        # a risk rule's "freeze the commissions" action
        register_commission_freezer(freeze_commissions)
