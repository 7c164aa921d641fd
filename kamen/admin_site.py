from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class KamenAdminSite(admin.AdminSite):
    """The merchant console: Django admin, titled and ordered for the business."""

    site_header = _("Kamen 商户后台")
    site_title = _("Kamen 商户后台")
    index_title = _("经营概览")
    index_template = "admin/kamen_index.html"

    # Apps in the order a merchant works through them.
    app_order = ["catalog", "distribution", "orders", "commissions", "riskcontrol", "kamen", "auth"]

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(self.app_order)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))
