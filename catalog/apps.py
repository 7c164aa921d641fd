from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = _("商品与货源")

    def ready(self):
        from kamen.admin_site import add_index_panel
        from kamen.encrypted_fields import register_encrypted_field

        from .console.index_panel import console_index_panel
        from .models import CardKey, CardKeyImport, ReusableCardKey, SandboxAccount, Supplier
        from .sandbox_services import SECRET_ASSOCIATED_DATA as SANDBOX_SECRET_CONTEXT
        from .services.suppliers import SECRET_ASSOCIATED_DATA as SUPPLIER_SECRET_CONTEXT
        from .services.upstream_sync import WEBHOOK_SECRET_CONTEXT
        from .services.vault import PAYLOAD_CONTEXT

        register_encrypted_field(CardKey, "secret_ciphertext", "key_id")
        register_encrypted_field(ReusableCardKey, "secret_ciphertext", "key_id")
        register_encrypted_field(Supplier, "app_secret_ciphertext", "app_secret_key_id", SUPPLIER_SECRET_CONTEXT)
        register_encrypted_field(Supplier, "webhook_secret_ciphertext", "webhook_secret_key_id", WEBHOOK_SECRET_CONTEXT)
        register_encrypted_field(SandboxAccount, "app_secret_ciphertext", "app_secret_key_id", SANDBOX_SECRET_CONTEXT)
        register_encrypted_field(CardKeyImport, "payload_ciphertext", "payload_key_id", PAYLOAD_CONTEXT)
        add_index_panel(console_index_panel)
