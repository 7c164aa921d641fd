from django.contrib import admin
from django.contrib.admin import options
from django.contrib.contenttypes import views as contenttype_views
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from kamen import parsing

# Every number field of every admin form, inlines included, reads ASCII digits only
# (kamen/parsing.py): Django's own fields take 1e1, ١٠ and １０. The admin copies these
# defaults into each ModelAdmin and inline and looks them up along the model field's MRO,
# so the subclasses it lists itself (BigIntegerField) get the form class too; widgets stay.
for _model_field, _form_field in (
    (models.IntegerField, parsing.IntegerField),
    (models.DecimalField, parsing.DecimalField),
):
    options.FORMFIELD_FOR_DBFIELD_DEFAULTS.setdefault(_model_field, {})
    for _listed, _defaults in options.FORMFIELD_FOR_DBFIELD_DEFAULTS.items():
        if issubclass(_listed, _model_field):
            _defaults["form_class"] = _form_field


# Panels of the console's index that other apps add (kamen sits below them all): each is
# ``provider(request) -> dict`` merged into the index's context, registered in the app's
# AppConfig.ready() (catalog: the dashboard and the supplier alerts).
_INDEX_PANELS: list = []


def add_index_panel(provider) -> None:
    if provider not in _INDEX_PANELS:
        _INDEX_PANELS.append(provider)


def _console_url(name: str, fallback: str) -> str:
    """Console pages are built by other modules; link by name, or by path until the name exists."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return fallback


def view_on_site(request, content_type_id, object_id):
    """The admin's "view on site" jump, for models that have a page: a model without a table
    (django-rq's dashboard) or without ``get_absolute_url`` is a 404, not a database error."""
    if not parsing.is_ascii_digits(content_type_id):  # the admin's route takes any path here
        raise Http404
    try:
        model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
    except ContentType.DoesNotExist:
        raise Http404 from None
    if model is None or not model._meta.managed or not hasattr(model, "get_absolute_url"):
        raise Http404
    return contenttype_views.shortcut(request, content_type_id, object_id)


class KamenAdminSite(admin.AdminSite):
    """The merchant console: Django admin, titled and ordered for the business."""

    site_header = _("Kamen 商户后台")
    site_title = _("Kamen 商户后台")
    index_title = _("经营概览")
    index_template = "admin/kamen_index.html"

    # Apps in the order a merchant works through them.
    app_order = ["catalog", "distribution", "orders", "commissions", "riskcontrol", "kamen", "auth"]
    # Within the catalog: what is sold first, then stock, then where it comes from.
    model_order = {
        "catalog": [
            "Product", "Category", "CardKey", "CardKeyBatch", "CardKeyImport", "ReusableCardKey", "StockAlert",
            "Supplier", "SupplierAlert", "SupplierRechargeAttempt", "SupplierPriceChange",
            "SandboxAccount", "SandboxSku", "SandboxOrder",
        ],
        "kamen": ["User", "AuditLogEntry"],
    }

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: position for position, label in enumerate(self.app_order)}
        for app in apps:
            order = {name: position for position, name in enumerate(self.model_order.get(app["app_label"], []))}
            app["models"].sort(key=lambda model: (order.get(model["object_name"], len(order)), str(model["name"])))
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def get_urls(self):
        urls = super().get_urls()
        for pattern in urls:
            if getattr(pattern, "name", None) == "view_on_site":
                pattern.callback = self.admin_view(view_on_site)
        return urls

    def index(self, request, extra_context=None):
        # Each shortcut with the permission its page checks: a role is offered only what it
        # may open (finance and risk staff were offered 导入卡密 and 新增商品, each a 403).
        shortcuts = [
            (_("控制台首页"), _console_url("console:home", "/console/"), None),
            (_("导入卡密"), _console_url("console:card-key-import", "/console/"), "catalog.import_cardkeys"),
            (_("库存总览"), _console_url("console:stock", "/console/stock/"), "catalog.view_cardkey"),
            (_("新增商品"), reverse("admin:catalog_product_add"), "catalog.add_product"),
            (_("审计日志"), reverse("admin:kamen_auditlogentry_changelist"), "kamen.view_auditlogentry"),
        ]
        context = {
            "shortcuts": [
                (label, url)
                for label, url, permission in shortcuts
                if permission is None or request.user.has_perm(permission)
            ],
        }
        for provider in _INDEX_PANELS:
            context |= provider(request)
        context |= extra_context or {}
        if request.user.has_perm("kamen.view_auditlogentry"):
            from kamen.models import AuditLogEntry

            context["recent_audit"] = AuditLogEntry.objects.all()[:8]
        return super().index(request, extra_context=context)
