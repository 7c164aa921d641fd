from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommissionsConfig(AppConfig):
    name = "commissions"
    verbose_name = _("佣金")

    def ready(self):
        from . import receivers

        receivers.connect()
