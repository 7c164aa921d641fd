from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DistributionConfig(AppConfig):
    name = "distribution"
    verbose_name = _("分销网络")

    def ready(self):
        from kamen.encrypted_fields import register_encrypted_field

        from .docking.models import ApiKey, DockingSite
        from .docking.services import api_key_associated_data, webhook_secret_associated_data

        register_encrypted_field(ApiKey, "secret_ciphertext", "secret_key_id", api_key_associated_data)
        register_encrypted_field(
            DockingSite, "webhook_secret_ciphertext", "webhook_secret_key_id", webhook_secret_associated_data
        )
