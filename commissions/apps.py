from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommissionsConfig(AppConfig):
    name = "commissions"
    verbose_name = _("佣金")

    def ready(self):
        from kamen.encrypted_fields import register_encrypted_field

        from . import receivers
        from .models import PayoutAccount

        register_encrypted_field(
            PayoutAccount,
            "account_ciphertext",
            "account_key_id",
            lambda account: f"payout-account:{account.distributor_id}".encode(),
        )

        receivers.connect()
