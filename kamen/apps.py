from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class KamenConfig(AppConfig):
    name = "kamen"
    verbose_name = _("平台")

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import signals  # noqa: F401
        from .encrypted_fields import register_encrypted_field
        from .models import StaffTwoFactor
        from .roles import sync_roles

        register_encrypted_field(
            StaffTwoFactor, "secret_ciphertext", "secret_key_id", lambda row: f"totp:{row.user_id}".encode()
        )

        post_migrate.connect(sync_roles, dispatch_uid="kamen.sync_roles")


class KamenAdminConfig(AdminConfig):
    default_site = "kamen.admin_site.KamenAdminSite"
