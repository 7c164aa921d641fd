"""Merchant staff roles as permission groups, kept in step with the code after every migrate.

A role lists permission codenames ("app_label.codename"); unknown ones are ignored so a role
can name permissions of apps that arrive in later issues.
"""

from django.utils.translation import gettext_noop

OWNER = "owner"
OPERATOR = "operator"
FINANCE = "finance"
RISK = "risk"

ROLE_LABELS = {
    OWNER: gettext_noop("店主"),
    OPERATOR: gettext_noop("运营"),
    FINANCE: gettext_noop("财务"),
    RISK: gettext_noop("风控"),
}

_CATALOG_EDIT = [
    f"catalog.{verb}_{model}"
    for model in ("category", "product", "productimage", "productcustomfield", "bundleitem", "reusablecardkey")
    for verb in ("add", "change", "view")
]
_CATALOG_VIEW = [f"catalog.view_{model}" for model in ("category", "product", "cardkey", "cardkeybatch", "stockalert")]
_STOCK = [
    "catalog.view_cardkey",
    "catalog.change_cardkey",
    "catalog.view_cardkeybatch",
    "catalog.view_cardkeyimport",
    "catalog.add_cardkeyimport",
    "catalog.import_cardkeys",
    "catalog.view_stockalert",
    "catalog.change_stockalert",
]
_SUPPLIERS_VIEW = ["catalog.view_supplier", "catalog.view_supplierchannel", "catalog.view_supplierpricechange"]
_SUPPLIERS_EDIT = _SUPPLIERS_VIEW + [
    f"catalog.{verb}_{model}" for model in ("supplier", "supplierchannel") for verb in ("add", "change")
]

_DISTRIBUTION_VIEW = [
    f"distribution.view_{model}"
    for model in ("distributor", "distributorapplication", "grade", "substore", "referrallink", "invitation", "distributionsettings")
]
_DISTRIBUTION_OPERATE = _DISTRIBUTION_VIEW + [
    "distribution.change_distributor",
    "distribution.approve_distributor",
    "distribution.freeze_distributor",
    "distribution.move_distributor",
    *[f"distribution.{verb}_{model}" for model in ("bannedword", "copytemplate") for verb in ("add", "change", "view")],
]

_RISKCONTROL = [
    "riskcontrol.view_riskrule",
    "riskcontrol.change_riskrule",
    "riskcontrol.view_riskevent",
    "riskcontrol.view_reviewcase",
    "riskcontrol.decide_reviewcase",
    "riskcontrol.view_blacklistentry",
    "riskcontrol.add_blacklistentry",
    "riskcontrol.change_blacklistentry",
    "riskcontrol.view_realnameverification",
    "orders.view_order",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # The owner gets every permission (see sync_roles); listed here for completeness.
    OWNER: [],
    OPERATOR: _CATALOG_EDIT + _CATALOG_VIEW + _STOCK + _SUPPLIERS_EDIT + ["catalog.change_product_price"]
    + _DISTRIBUTION_OPERATE,
    FINANCE: _CATALOG_VIEW + _SUPPLIERS_VIEW + ["kamen.view_auditlogentry"] + _DISTRIBUTION_VIEW,
    RISK: _CATALOG_VIEW + ["kamen.view_auditlogentry"] + _DISTRIBUTION_VIEW + ["distribution.freeze_distributor"]
    + _RISKCONTROL,
}


def sync_roles(**kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=role)
        if role == OWNER:
            group.permissions.set(Permission.objects.all())
            continue
        permissions = []
        for dotted in codenames:
            app_label, codename = dotted.split(".", 1)
            permissions.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
