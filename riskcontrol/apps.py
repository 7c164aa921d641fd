from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskcontrolConfig(AppConfig):
    name = "riskcontrol"
    verbose_name = _("风控")

    def ready(self):
        from django.db.models.signals import post_migrate

        from kamen.encrypted_fields import register_encrypted_field

        from . import receivers  # noqa: F401
        from .models import RealNameVerification
        from .rules import ensure_default_rules

        register_encrypted_field(
            RealNameVerification, "data_ciphertext", "data_key_id", lambda row: f"real-name:{row.distributor_id}".encode()
        )

        post_migrate.connect(
            ensure_default_rules, sender=self, dispatch_uid="riskcontrol.default_rules"
        )
