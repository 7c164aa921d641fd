from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskcontrolConfig(AppConfig):
    name = "riskcontrol"
    verbose_name = _("风控")
