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
_SUPPLIERS_VIEW = [
    "catalog.view_supplier",
    "catalog.view_supplierchannel",
    "catalog.view_supplierpricechange",
    "catalog.view_supplieralert",
    "catalog.view_supplierrechargeattempt",
]
_SUPPLIERS_EDIT = _SUPPLIERS_VIEW + [
    f"catalog.{verb}_{model}" for model in ("supplier", "supplierchannel") for verb in ("add", "change")
] + ["catalog.delete_supplierchannel"] + [
    f"catalog.{verb}_{model}" for model in ("sandboxaccount", "sandboxsku") for verb in ("add", "change", "view")
] + ["catalog.view_sandboxorder"]

_ORDERS_VIEW = [
    f"orders.view_{model}"
    for model in (
        "order", "orderstatuschange", "orderdelivery", "paymentattempt", "paymentcallback", "refund",
        "voucher", "voucherredemption",
    )
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
    *[f"distribution.{verb}_{model}" for model in ("bannedword", "copytemplate", "promotionrule", "appeal") for verb in ("add", "change", "view")],
]

_COMMISSIONS_VIEW = [
    f"commissions.view_{model}"
    for model in (
        "account",
        "journaltransaction",
        "journalentry",
        "commission",
        "commissionrule",
        "commissiontier",
        "productbonus",
        "campaign",
        "commissionpolicy",
        "capevent",
        "settlementrun",
        "wallethold",
        "withdrawal",
        "payoutaccount",
        "autoapprovalpolicy",
        "depositrefund",
    )
]
_COMMISSIONS_FINANCE = _COMMISSIONS_VIEW + [
    "commissions.review_withdrawal",
    "commissions.review_deposit_refund",
    "commissions.change_withdrawal",
    "commissions.add_settlementrun",
    "commissions.add_commissionrule",
    "commissions.change_commissionrule",
    "commissions.add_productbonus",
    "commissions.change_productbonus",
    "commissions.add_campaign",
    "commissions.change_campaign",
    "commissions.change_commissionpolicy",
    "commissions.change_autoapprovalpolicy",
    "commissions.export_withholding",
]

# Docking (对接, docs/adr/0019): operators run sites, keys and webhooks; finance tops up the
# prepaid balances and decides refund requests; everyone on staff reads.
_DOCKING_VIEW = [
    "distribution.view_dockingsite",
    "distribution.view_apikey",
    "distribution.view_webhookevent",
    "distribution.view_webhookattempt",
    "orders.view_dockingorder",
    "orders.view_apirefundrequest",
]
_DOCKING_OPERATE = _DOCKING_VIEW + [
    "distribution.add_dockingsite",
    "distribution.change_dockingsite",
    "distribution.approve_dockingsite",
    "distribution.manage_api_keys",
    "distribution.resend_webhookevent",
]
_DOCKING_FINANCE = _DOCKING_VIEW + ["distribution.top_up_prepaid"]

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
    + _ORDERS_VIEW + ["orders.confirm_payment_manually", "orders.redeem_voucher", "orders.redrive_fulfilment"]
    + _DISTRIBUTION_OPERATE + _DOCKING_OPERATE,
    FINANCE: _CATALOG_VIEW + _SUPPLIERS_VIEW + ["kamen.view_auditlogentry"] + _ORDERS_VIEW + ["orders.refund_order"]
    + ["orders.view_gatewaystatement", "orders.view_statementdifference", "orders.reconcile_statements"]
    + ["orders.view_depositpayment"]
    + _DISTRIBUTION_VIEW + _COMMISSIONS_FINANCE + _DOCKING_FINANCE,
    RISK: _CATALOG_VIEW + ["kamen.view_auditlogentry"] + _ORDERS_VIEW + _DISTRIBUTION_VIEW + _DOCKING_VIEW
    + ["distribution.freeze_distributor", "commissions.freeze_commissions", "commissions.view_wallethold"]
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
