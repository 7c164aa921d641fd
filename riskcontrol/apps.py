from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskcontrolConfig(AppConfig):
    name = "riskcontrol"
    verbose_name = _("风控")

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import receivers  # noqa: F401
        from .rules import ensure_default_rules

        post_migrate.connect(
            ensure_default_rules, sender=self, dispatch_uid="riskcontrol.default_rules"
        )
