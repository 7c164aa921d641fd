"""Every URL, every role: who may reach what.

The walk comes from the URL resolver, so a new URL fails `test_every_url_is_in_the_table`
until someone says here who may reach it. Roles:

    B   buyer, anonymous (holds the session grant for their own order, as after checkout)
    A   distributor (agent portal) whose subtree holds the objects in the URLs
    X   distributor of another subtree
    OW OP FI RI   merchant staff in the owner / operator / finance / risk group
    SU  superuser

Outcomes: "ok" (200), "login" (redirect to the admin or agent log-in page), "redirect"
(any other redirect, the page's normal answer), or a status code (403, 404, 405).
"""

import contextlib
import logging
from urllib.parse import urlsplit

import django_rq
import pytest
from django.contrib import admin
from django.core.cache import cache
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rq import Worker

from .permission_world import ROLES, client_for

CODES = {
    "B": "buyer",
    "A": "agent",
    "X": "other_agent",
    "OW": "owner",
    "OP": "operator",
    "FI": "finance",
    "RI": "risk",
    "SU": "superuser",
}
STAFF = ("owner", "operator", "finance", "risk", "superuser")
LOGIN_PATHS = ("/admin/login/", "/agent/login/")


def roles(codes: str) -> set[str]:
    return {CODES[code] for code in codes.split()}


def everyone(outcome="ok", **exceptions):
    """The same answer for every role (public pages), with named exceptions by role code."""
    table = dict.fromkeys(ROLES, outcome)
    for codes, other in exceptions.items():
        table.update(dict.fromkeys(roles(codes.replace("_", " ")), other))
    return table


def buyer_only(outcome="ok"):
    """The buyer's own order: only the browser holding the grant; everyone else 404."""
    return everyone(404) | {"buyer": outcome}


def console(allowed: str, *, ok="ok", denied=403):
    """A merchant console page: anonymous and distributors go to log in; staff in ``allowed``
    (SU is always added) get ``ok``; other staff are refused."""
    table = dict.fromkeys(("buyer", "agent", "other_agent"), "login")
    permitted = roles(allowed) | {"superuser"}
    table |= {role: ok if role in permitted else denied for role in STAFF}
    return table


def agent(*, other="ok", ok="ok"):
    """An agent-portal page: log in first; staff (not distributors) get the 403 status page;
    a distributor of another subtree gets ``other`` for an object of ours."""
    return {"buyer": "login", "agent": ok, "other_agent": other} | dict.fromkeys(STAFF, 403)


def nobody(outcome):
    """Refused to everyone: anonymous and distributors go to log in, all staff get ``outcome``."""
    return console("", denied=outcome) | {"superuser": outcome}


def logged_in(outcome="ok"):
    """Any logged-in user (two-factor pages); anonymous goes to log in."""
    return everyone(outcome) | {"buyer": "login"}


ALL_STAFF = "OW OP FI RI"

# --- the table: which role may reach which URL ----------------------------------------------------
EXPECTED = {
    # Public: shop, checkout, look-up, referral and sub-store pages, health, language.
    "healthz": everyone(),
    "media": everyone(404),  # uploaded images, to anyone; this one does not exist (kamen/media.py)
    "set_language": everyone("redirect"),
    "catalog:shop-home": everyone(),
    "catalog:product-detail": everyone(),
    "orders:checkout": everyone(405),  # POST only
    "orders:payment-notify": everyone(405),  # POST only, signed by the gateway
    "commissions:payout-notify": everyone(405),  # POST only, signed by the payout provider
    "orders:sandbox-cashier": everyone(),
    "postsale:order-lookup": everyone(),
    "postsale:order-lookup-results": everyone("redirect"),  # back to the form without a look-up
    "distribution:agent-login": everyone("redirect", B="ok"),
    "distribution:agent-logout": everyone(405),
    "distribution:join": everyone(),
    "distribution:referral": everyone("redirect"),
    "distribution:referral-product": everyone("redirect"),
    "distribution:sub-store": everyone(),
    "distribution:sub-store-product": everyone(),
    "sandbox-supplier:orders": everyone(405),  # signed API for the sandbox supplier
    "sandbox-supplier:orders-query": everyone(405),
    "sandbox-supplier:prices": everyone(405),
    "sandbox-supplier:balance": everyone(405),
    # The buyer's order: only with the grant (session or signed link), whoever else asks.
    "orders:order-detail": buyer_only(),
    "orders:order-status": buyer_only(),
    "orders:order-pay": everyone(405),  # POST only (see the POST walk)
    "orders:order-sync": everyone(405),
    "orders:order-pay-wallet": everyone(405),  # POST only (see the POST walk)
    "postsale:order-open": buyer_only("redirect"),
    "postsale:order-vouchers": buyer_only(),
    "postsale:voucher-qr": buyer_only(),
    "postsale:voucher-dynamic-code": buyer_only(),
    # Agent portal: the distributor's own subtree only.
    "distribution:agent-dashboard": agent(),
    "distribution:agent-team": agent(),
    "distribution:agent-team-member": agent(other=404),
    "distribution:agent-orders": agent(),
    "distribution:agent-order-detail": agent(other=404),
    "distribution:agent-store": agent(),
    "distribution:agent-links": agent(),
    "distribution:agent-posters": agent(),
    "distribution:agent-poster-image": agent(),
    "distribution:agent-copy": agent(),
    "distribution:agent-appeal": everyone(405),  # POST only (see the POST walk)
    "commissions:wallet": agent(),
    "commissions:statements": agent(),
    "commissions:withdrawals": agent(),
    "commissions:withdrawal-create": agent(),
    "commissions:payout-account-create": agent(),
    "commissions:tax-statements": agent(),
    "commissions:tax-certificate": agent(other=404),  # the viewer's own month; another has none
    "riskcontrol:real-name": agent(),
    "orders:agent-wallet-pay": agent(),  # lists the viewer's own unpaid orders only
    "orders:agent-wallet-pay-order": everyone(405),  # POST only (see the POST walk)
    "orders:agent-stock": agent(),  # the viewer's own purchases only
    "orders:agent-top-up": agent(),  # the viewer's own top-ups only
    "orders:agent-deposit": agent(),  # the viewer's own deposit, in any status (an applicant pays here)
    "orders:agent-stock-detail": agent(other=404, ok=404),  # keys: the buyer only; none in the world
    # Staff two-factor: any logged-in user; distributors are sent away from enrolment.
    "two-factor-setup": logged_in() | {"agent": "redirect", "other_agent": "redirect"},
    "two-factor-verify": logged_in(),
    # Merchant console pages outside the admin.
    "console:home": console(ALL_STAFF, ok="redirect"),  # on to the admin index
    "console:card-key-import": console("OW OP"),
    "console:card-key-import-detail": console("OW OP"),
    "console:card-key-import-status": console("OW OP"),
    "console:card-key-import-confirm": everyone(405),  # POST only (see the POST walk)
    "console:card-key-import-cancel": everyone(405),
    "console:card-key-reveal": console("OW"),  # the secret itself
    "console:reusable-key-reveal": console("OW"),
    "console:stock": console("OW OP FI RI"),
    "console:stock-threshold": everyone(405),
    # Docking from an upstream Kamen (issue 17 §2): connecting one and importing its products.
    "console:upstreams": console("OW OP"),
    "console:upstream-import": console("OW OP"),
    # An upstream's webhooks to us: POST only, signed with the upstream's webhook secret.
    "distribution:upstream-webhook": everyone(405),
    "postsale:voucher-redeem": console("OW OP"),
    # The open API (docs/adr/0019): its description is public; every endpoint needs a signed
    # request (401 without one, whoever is logged in to the site); POST-only ones refuse GET.
    "api:api-root": everyone(404),
    "api:openapi-json": everyone(),
    "api:openapi-view": everyone(),
    "api:list_products": everyone(401),
    "api:create_order": everyone(405),
    "api:get_order": everyone(401),
    "api:create_refund_request": everyone(405),
    "api:get_balance": everyone(401),
    "api:get_statement": everyone(401),
}

# --- the admin: one row per registered model: (list, add, change page, delete) ------------------
# Each cell lists the roles that may open that page (the change page and the history open
# read-only with the view permission); other staff get 403, anonymous and distributors go to
# log in. The bare object URL redirects every staff member to the change page.
ADMIN_MODELS = {
    # Staff accounts and roles: the owner only.
    "auth.group": ("OW SU", "OW SU", "OW SU", "OW SU"),
    "kamen.user": ("OW SU", "OW SU", "OW SU", "OW SU"),
    "kamen.auditlogentry": ("OW FI RI SU", "", "OW FI RI SU", ""),  # append-only
    # Catalog: operators edit, finance and risk read; suppliers and sandbox are operators'.
    "catalog.product": ("OW OP FI RI SU", "OW OP SU", "OW OP FI RI SU", ""),
    "catalog.category": ("OW OP FI RI SU", "OW OP SU", "OW OP FI RI SU", "OW SU"),
    "catalog.supplier": ("OW OP FI SU", "OW OP SU", "OW OP FI SU", "OW SU"),
    "catalog.supplieralert": ("OW OP FI SU", "", "OW OP FI SU", ""),
    "catalog.supplierrechargeattempt": ("OW OP FI SU", "", "OW OP FI SU", ""),
    "catalog.supplierpricechange": ("OW OP FI SU", "", "OW OP FI SU", ""),
    "catalog.sandboxaccount": ("OW OP SU", "OW OP SU", "OW OP SU", "OW SU"),
    "catalog.sandboxsku": ("OW OP SU", "OW OP SU", "OW OP SU", "OW SU"),
    "catalog.sandboxorder": ("OW OP SU", "", "OW OP SU", ""),
    # Card keys are listed without their secrets (test_card_key_secrets_show_only_after_a_permitted_reveal).
    "catalog.cardkey": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "catalog.cardkeybatch": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "catalog.cardkeyimport": ("OW OP SU", "", "OW OP SU", ""),
    "catalog.stockalert": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "catalog.reusablecardkey": ("OW OP SU", "OW OP SU", "OW OP SU", ""),
    # Distribution: everyone reads the network; operators run it; joining is through services.
    "distribution.distributor": ("OW OP FI RI SU", "OW SU", "OW OP FI RI SU", ""),
    "distribution.distributorapplication": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.grade": ("OW OP FI RI SU", "OW SU", "OW OP FI RI SU", ""),
    "distribution.distributionsettings": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.bannedword": ("OW OP SU", "OW OP SU", "OW OP SU", "OW SU"),
    "distribution.copytemplate": ("OW OP SU", "OW OP SU", "OW OP SU", "OW SU"),
    "distribution.substore": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.referrallink": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.invitation": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.promotionrule": ("OW OP SU", "OW OP SU", "OW OP SU", "OW SU"),
    "distribution.appeal": ("OW OP SU", "", "OW OP SU", ""),
    # Orders: read by all staff; changed only through the actions below.
    "orders.order": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.paymentcallback": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.refund": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.voucher": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.voucherredemption": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    # Reconciliation against the gateways (issue 18): finance reads it, nobody edits it.
    "orders.gatewaystatement": ("OW FI SU", "", "OW FI SU", ""),
    # Commissions and money: finance (risk sees holds only; nobody edits the ledger).
    "commissions.commissionrule": ("OW FI SU", "OW FI SU", "OW FI SU", "OW SU"),
    "commissions.productbonus": ("OW FI SU", "OW FI SU", "OW FI SU", "OW SU"),
    "commissions.campaign": ("OW FI SU", "OW FI SU", "OW FI SU", "OW SU"),
    "commissions.teambonusrule": ("OW SU", "OW SU", "OW SU", "OW SU"),
    "commissions.commissionpolicy": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.commission": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.capevent": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.account": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.journaltransaction": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.journalentry": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.settlementrun": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.withdrawal": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.payoutaccount": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.wallethold": ("OW FI RI SU", "", "OW FI RI SU", ""),
    "commissions.commissiontier": ("OW FI SU", "", "OW FI SU", ""),
    "commissions.autoapprovalpolicy": ("OW FI SU", "", "OW FI SU", ""),
    # Deposits (docs/adr/0023): finance decides refunds by action; payments are read-only.
    "commissions.depositrefund": ("OW FI SU", "", "OW FI SU", ""),
    "orders.depositpayment": ("OW FI SU", "", "OW FI SU", ""),
    # Risk control: the risk team; real-name data masked (see test_real_name_pages_show_masks_only).
    # Docking (docs/adr/0019): operators add sites; every staff role reads; all else by action.
    "distribution.dockingsite": ("OW OP FI RI SU", "OW OP SU", "OW OP FI RI SU", ""),
    "distribution.apikey": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "distribution.webhookevent": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.dockingorder": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "orders.apirefundrequest": ("OW OP FI RI SU", "", "OW OP FI RI SU", ""),
    "riskcontrol.riskrule": ("OW RI SU", "", "OW RI SU", ""),
    "riskcontrol.riskevent": ("OW RI SU", "", "OW RI SU", ""),
    "riskcontrol.reviewcase": ("OW RI SU", "", "OW RI SU", ""),
    "riskcontrol.blacklistentry": ("OW RI SU", "OW RI SU", "OW RI SU", ""),
    "riskcontrol.realnameverification": ("OW RI SU", "", "OW RI SU", ""),
}
# Admin pages that are not a model's standard five (custom views, the index, rq dashboard).
SINGLETONS = {"commissions.commissionpolicy", "commissions.autoapprovalpolicy"}
OWNER_ONLY = "OW"  # the owner holds every permission, the rq dashboard's among them
EXPECTED_ADMIN = {
    "admin:index": console(ALL_STAFF),
    "admin:login": everyone("redirect", B="ok", A="ok", X="ok"),
    "admin:logout": everyone(405, B="redirect", A="redirect", X="redirect"),
    "admin:password_change": console(ALL_STAFF),
    "admin:password_change_done": console(ALL_STAFF),
    "admin:jsi18n": console(ALL_STAFF),
    "admin:autocomplete": nobody(403),  # needs a field to complete: refused bare
    "admin:view_on_site": nobody(404),  # products have no public page of their own here
    "admin:app_list": console(ALL_STAFF),
    "/admin/(?P<url>.*)$": nobody(404),
    "admin:auth_user_password_change": console("OW"),
    # Custom admin pages: each checks its own permission.
    "admin:distribution_distributor_manage": console(ALL_STAFF),  # its forms check theirs (POST walk)
    "admin:orders_order_confirm_payment": console("OW OP"),
    "admin:orders_order_refund": console("OW FI"),
    "admin:orders_order_redrive": console("OW OP"),
    "admin:orders_order_profit": console("OW FI"),  # the profit report reads the ledger
    "admin:orders_gatewaystatement_upload": console("OW FI"),
    "admin:commissions_commissionrule_preview": console("OW FI"),
    "admin:commissions_commission_report": console("OW FI"),
    "admin:commissions_settlementrun_run": console("OW FI"),  # the confirmation page
    "admin:commissions_commissiontier_edit": console("OW FI"),
    "admin:distribution_dockingsite_top_up": console("OW FI"),
    "admin:distribution_dockingsite_issue_key": console("OW OP"),
    "admin:distribution_dockingsite_webhook": console("OW OP"),
    "admin:commissions_withdrawal_tax_certificate": console("OW FI"),
    "admin:commissions_withdrawal_withholding_export": console("OW FI"),  # the form; ?month= is the CSV
    "admin:riskcontrol_riskevent_export": console("OW RI"),
    "admin:riskcontrol_reviewcase_decide": console("OW RI"),
    "admin:riskcontrol_blacklistentry_export": console("OW RI"),
    "admin:riskcontrol_blacklistentry_import": console("OW RI"),
    # The RQ dashboard: queued jobs and the power to delete them, for the owner only.
    "admin:django_rq_dashboard_changelist": console(OWNER_ONLY),
    "admin:django_rq_home": console(OWNER_ONLY),
    "/admin/django_rq/dashboard/^stats.json/?$": console(OWNER_ONLY)
    | dict.fromkeys(("buyer", "agent", "other_agent"), 401),
    "/admin/django_rq/dashboard/^stats.json/(?P<token>[\\w]+)?/?$": console(
        OWNER_ONLY, ok=404, denied=404
    ),  # bad token
    **{
        f"admin:django_rq_{name}": console(OWNER_ONLY)
        for name in (
            "jobs",
            "queue_details",
            "finished_jobs",
            "failed_jobs",
            "delete_failed_jobs",
            "scheduled_jobs",
            "started_jobs",
            "deferred_jobs",
            "clear",
            "requeue_all",
            "workers",
            "job_detail",
            "delete_job",
            "requeue_job",
            "enqueue_job",
            "worker_details",
        )
    },
    "admin:django_rq_stop_job": console(OWNER_ONLY, ok=405),
    "admin:django_rq_confirm_action": console(OWNER_ONLY, ok="redirect"),
    "admin:django_rq_actions": console(OWNER_ONLY, ok="redirect"),
    **{
        f"admin:django_rq_{name}": console(OWNER_ONLY, ok=404)  # no such result, worker or cron scheduler
        for name in ("result_detail", "cron_scheduler_detail", "cron_job_detail")
    },
}


# --- walking the resolver -------------------------------------------------------------------------
def walk(patterns=None, prefix="", namespace=""):
    """(route, qualified name, pattern) for every URL the project answers."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else (pattern.name or "")
            yield prefix + str(pattern.pattern), name, pattern


def url_keys() -> list[tuple[str, str, str]]:
    """(key, route, name): a key is the URL name, or the route where the name is missing or shared."""
    rows = list(walk())
    counts = {}
    for _route, name, _pattern in rows:
        counts[name] = counts.get(name, 0) + 1
    return [
        (name if name and counts[name] == 1 and not name.endswith(":") else f"/{route}", route, name)
        for route, name, _pattern in rows
    ]


ADMIN_VIEWS = ("changelist", "add", "history", "delete", "change")


def admin_model_expectations() -> dict[str, dict]:
    """The five standard admin URLs of every registered model, from ADMIN_MODELS."""
    table = {}
    for model in admin.site._registry:
        label = model._meta.label_lower
        if label not in ADMIN_MODELS:
            continue
        listing, add, change, delete = (roles(cell) if cell else set() for cell in ADMIN_MODELS[label])
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        for suffix, allowed in (
            ("changelist", listing),
            ("add", add),
            ("history", change),
            ("delete", delete),
            ("change", change),
        ):
            table[f"{prefix}_{suffix}"] = admin_page(allowed)
        if label in SINGLETONS:  # the list opens the one row
            table[f"{prefix}_changelist"] = admin_page(listing, ok="redirect")
        table[f"/admin/{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/"] = admin_page(
            roles("OW OP FI RI SU"), ok="redirect"
        )
    return table


def admin_page(allowed: set[str], *, ok="ok", denied=403):
    table = dict.fromkeys(("buyer", "agent", "other_agent"), "login")
    return table | {role: ok if role in allowed else denied for role in STAFF}


def expectations() -> dict[str, dict]:
    return EXPECTED | EXPECTED_ADMIN | admin_model_expectations()


def outcome(response) -> str | int:
    if response.status_code == 200:
        return "ok"
    if response.status_code in (301, 302, 303):
        path = urlsplit(response["Location"]).path
        return "login" if path in LOGIN_PATHS else "redirect"
    return response.status_code


def arguments(world) -> dict[str, dict]:
    """Path parameters for each URL, filled with the world's objects (ours, not the other subtree's)."""
    w = world
    buyer_order = {"order_no": w.buyer_order.order_no}
    queue = {"queue_index": 0}
    job = queue | {"job_id": w.rq_job.id}
    today = timezone.localdate()
    this_month = {"year": today.year, "month": today.month}
    return {
        "catalog:product-detail": {"pk": w.product.pk},
        "media": {"path": "products/no-such-image.png"},
        "orders:checkout": {"pk": w.product.pk},
        "orders:order-detail": buyer_order,
        "orders:order-status": buyer_order,
        "orders:order-pay": buyer_order,
        "orders:order-sync": buyer_order,
        "orders:order-pay-wallet": buyer_order,
        "orders:agent-wallet-pay-order": {"order_no": w.agent_order.order_no},
        "orders:agent-stock-detail": {"purchase_no": "S-none"},
        "orders:payment-notify": {"gateway": "sandbox"},
        "commissions:payout-notify": {"method": "alipay"},
        "orders:sandbox-cashier": {"trade_no": w.sandbox_payment.trade_no},
        "postsale:order-open": buyer_order,
        "postsale:order-vouchers": buyer_order,
        "postsale:voucher-qr": {"pk": w.voucher.pk},
        "postsale:voucher-dynamic-code": {"pk": w.voucher.pk},
        "distribution:agent-team-member": {"pk": w.agent_child.pk},
        "distribution:agent-order-detail": {"order_no": w.agent_order.order_no},
        "distribution:agent-poster-image": {"product_pk": w.product.pk},
        "distribution:join": {"code": w.invitation.code},
        "distribution:referral": {"code": w.link.code},
        "distribution:referral-product": {"code": w.link.code, "product_pk": w.product.pk},
        "distribution:sub-store": {"slug": w.sub_store.slug},
        "distribution:sub-store-product": {"slug": w.sub_store.slug, "product_pk": w.product.pk},
        "console:card-key-import-detail": {"pk": w.card_key_import.pk},
        "console:upstream-import": {"pk": w.upstream_supplier.pk},
        "distribution:upstream-webhook": {"supplier_pk": w.upstream_supplier.pk},
        "console:card-key-import-status": {"pk": w.card_key_import.pk},
        "console:card-key-import-confirm": {"pk": w.card_key_import.pk},
        "console:card-key-import-cancel": {"pk": w.card_key_import.pk},
        "console:card-key-reveal": {"pk": w.card_key.pk},
        "console:reusable-key-reveal": {"pk": w.reusable_key.pk},
        "console:stock-threshold": {"pk": w.product.pk},
        "admin:auth_user_password_change": {"id": w.users["operator"].pk},
        "admin:view_on_site": {"content_type_id": w.product_content_type, "object_id": w.product.pk},
        "admin:app_list": {"app_label": "catalog"},
        "admin:distribution_distributor_manage": {"pk": w.agent_child.pk},
        "admin:orders_order_confirm_payment": {"object_id": w.agent_order.pk},
        "admin:orders_order_refund": {"object_id": w.agent_order.pk},
        "admin:orders_order_redrive": {"object_id": w.agent_order.pk},
        "admin:riskcontrol_reviewcase_decide": {"pk": w.review_case.pk},
        "admin:distribution_dockingsite_top_up": {"pk": w.docking_site.pk},
        "admin:distribution_dockingsite_issue_key": {"pk": w.docking_site.pk},
        "admin:distribution_dockingsite_webhook": {"pk": w.docking_site.pk},
        "api:get_order": {"client_order_no": "M-1"},
        "api:create_refund_request": {"client_order_no": "M-1"},
        "commissions:tax-certificate": this_month,
        "admin:commissions_withdrawal_tax_certificate": {"distributor_id": w.agent_child.pk} | this_month,
        "admin:django_rq_jobs": queue,
        "admin:django_rq_queue_details": queue,
        "admin:django_rq_finished_jobs": queue,
        "admin:django_rq_failed_jobs": queue,
        "admin:django_rq_delete_failed_jobs": queue,
        "admin:django_rq_scheduled_jobs": queue,
        "admin:django_rq_started_jobs": queue,
        "admin:django_rq_deferred_jobs": queue,
        "admin:django_rq_clear": queue,
        "admin:django_rq_requeue_all": queue,
        "admin:django_rq_confirm_action": queue,
        "admin:django_rq_actions": queue,
        "admin:django_rq_workers": queue,
        "admin:django_rq_job_detail": job,
        "admin:django_rq_result_detail": job | {"result_id": "no-such-result"},
        "admin:django_rq_delete_job": job,
        "admin:django_rq_requeue_job": job,
        "admin:django_rq_enqueue_job": job,
        "admin:django_rq_stop_job": job,
        "admin:django_rq_worker_details": queue | {"key": w.rq_worker.key},
        "admin:django_rq_scheduler_jobs": {"scheduler_index": 0},
        "admin:django_rq_cron_scheduler_detail": {"connection_index": 0, "scheduler_name": "none"},
        "admin:django_rq_cron_job_detail": {"connection_index": 0, "scheduler_name": "none", "cron_job_name": "none"},
    }


# Routes without a usable name (shared or missing): their paths, by hand.
PATHS = {
    "/admin/django_rq/dashboard/^stats.json/?$": lambda w: "/admin/django_rq/dashboard/stats.json/",
    "/admin/django_rq/dashboard/^stats.json/(?P<token>[\\w]+)?/?$": lambda w: (
        "/admin/django_rq/dashboard/stats.json/no-token/"
    ),
    "/admin/(?P<url>.*)$": lambda w: "/admin/no-such-page/",
}


def admin_object_pk(world, model) -> int | str:
    if model._meta.label_lower == "distribution.distributorapplication":
        return world.applicant.pk
    if not model._meta.managed:
        return 1
    first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    assert first is not None, f"the permission world has no {model._meta.label}: add one to permission_world.py"
    return first


def url_for(key: str, route: str, name: str, world) -> str:
    if key in PATHS:
        return PATHS[key](world)
    for model in admin.site._registry:
        base = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        if route == base + "<path:object_id>/":
            return f"/{base}{admin_object_pk(world, model)}/"
        stem = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if name in (stem + "change", stem + "delete", stem + "history"):
            return reverse(name, args=[admin_object_pk(world, model)])
    return reverse(name, kwargs=arguments(world).get(key, {}))


@pytest.fixture
def world(db):
    from django.contrib.contenttypes.models import ContentType

    from orders.models import OrderStatus
    from orders.tests.factories import start_sandbox
    from orders.tests.postsale_helpers import make_order as make_buyer_order

    from .permission_world import build_world

    built = build_world()
    built.objects["product_content_type"] = ContentType.objects.get_for_model(built.product).pk
    pending = make_buyer_order(status=OrderStatus.PENDING_PAYMENT)
    built.objects["sandbox_payment"] = start_sandbox(pending)
    cache.clear()  # the cache shares the Redis database with the queues: clear first
    # A job in the RQ queue, so the dashboard's job pages have one to show.
    queue = django_rq.get_queue("default")
    built.objects["rq_job"] = queue.create_job(len, args=([],), job_id="permission-matrix-job")
    built.rq_job.save()
    built.objects["rq_worker"] = Worker([queue], connection=queue.connection, name="permission-matrix-worker")
    built.rq_worker.register_birth()
    yield built
    built.rq_job.connection.delete(built.rq_job.key)
    built.rq_worker.register_death()


def test_every_url_is_in_the_table():
    table = expectations()
    missing = [key for key, _route, _name in url_keys() if key not in table]
    assert missing == [], f"URLs nobody has classified; add them to EXPECTED in {__name__}: {missing}"
    stale = set(table) - {key for key, _route, _name in url_keys()}
    assert stale == set(), f"the table names URLs that no longer exist: {sorted(stale)}"
    for key, row in table.items():
        assert set(row) == set(ROLES), f"{key} does not say what every role gets"


@pytest.mark.parametrize("role", ROLES)
def test_every_url_as(role, world, caplog):
    """One role walks every URL (a test per role keeps each short and names the role that fails)."""
    caplog.set_level(logging.ERROR, logger="django.request")  # hundreds of refusals, each logged
    table = expectations()
    client = client_for(role, world, Client)
    wrong = []
    for key, route, name in url_keys():
        path = url_for(key, route, name, world)
        got = outcome(client.get(path))
        expected = table.get(key, {}).get(role)
        if got != expected:
            wrong.append(f"{key} {path}: got {got!r}, expected {expected!r}")
    assert wrong == [], f"as {role}:\n" + "\n".join(wrong)


# --- POST: state-changing endpoints refuse the roles without their permission ----------------------
# key: (roles that may post, form data). Every other role posts and must get the refusal (log-in
# page for anonymous and distributors, 403 for staff) or, for the buyer's order, 404; then
# nothing has changed.
def posts(world) -> dict[str, tuple[str, dict]]:
    from orders.services.redemption import voucher_code

    return {
        "console:card-key-import-confirm": ("OW OP SU", {}),
        "console:card-key-import-cancel": ("OW OP SU", {}),
        "console:stock-threshold": ("OW OP SU", {"low_stock_threshold": "7"}),
        "console:upstreams": (
            "OW OP SU",
            {"name": "上游乙", "base_url": "http://127.0.0.1:9/", "app_id": "ak_x", "app_secret": "secret-0123"},
        ),
        "console:upstream-import": (
            "OW OP SU",
            {"action": "webhook", "webhook_secret": "a-webhook-secret-0123456789"},
        ),
        "console:card-key-reveal": ("OW SU", {}),
        "console:reusable-key-reveal": ("OW SU", {}),
        "postsale:voucher-redeem": ("OW OP SU", {"code": voucher_code(world.voucher), "store_label": "门店"}),
        "admin:orders_order_confirm_payment": ("OW OP SU", {"reason": "补单"}),
        "admin:orders_order_refund": ("OW FI SU", {"amount": "1.00", "reason": "退款"}),
        "admin:orders_order_redrive": ("OW OP SU", {}),
        "admin:orders_gatewaystatement_upload": ("OW FI SU", {"gateway": "sandbox", "statement_format": "alipay"}),
        "admin:riskcontrol_reviewcase_decide": ("OW RI SU", {"decision": "approved", "reason": "通过"}),
        "admin:commissions_settlementrun_run": ("OW FI SU", {"token": "20261124000000"}),
        "admin:commissions_commissiontier_edit": ("OW FI SU", {}),
        "admin:commissions_autoapprovalpolicy_change": (
            "OW FI SU",
            {"is_enabled": "on", "max_amount": "500.00", "min_verified_days": "30", "daily_total_max": "5000.00"},
        ),
        "admin:riskcontrol_blacklistentry_import": ("OW RI SU", {}),
        "admin:django_rq_clear": ("OW SU", {}),
        "admin:django_rq_delete_job": ("OW SU", {}),
        "admin:distribution_distributor_manage": ("OW OP RI SU", {"action": "frozen", "reason": "冻结"}),
        "distribution:agent-appeal": ("A X", {"reason": "申诉"}),
        "orders:order-pay": ("B", {}),
        "orders:order-sync": ("B", {}),
        # Only an order the distributor placed for themselves; agent_order is not one.
        "orders:agent-wallet-pay-order": ("", {}),
        "orders:agent-stock": ("A X", {"product": str(world.product.pk), "quantity": "1", "token": "pm"}),
        "orders:agent-top-up": ("A X", {"amount": "1.00"}),
        # A distributor's own deposit page (refused with a message when their grade has none).
        "orders:agent-deposit": ("A X", {"action": "pay", "amount": "1.00"}),
        "admin:commissions_depositrefund_changelist": (
            "OW FI SU",
            {"action": "reject", "_selected_action": [str(world.deposit_refund.pk)], "reason": "驳回"},
        ),
    }


# Refusals that are not the usual log-in page / 403, by role.
POST_REFUSAL = {
    "orders:order-pay": everyone(404),  # not your order: as if it did not exist
    "orders:order-sync": everyone(404),
    "orders:agent-wallet-pay-order": agent(other=404, ok=404),
    "orders:agent-stock": agent(),
    "orders:agent-top-up": agent(),
    "orders:agent-deposit": agent(),
    "admin:distribution_distributor_manage": everyone("ok", B="login", A="login", X="login"),  # shows the refusal
    "distribution:agent-appeal": everyone(404, B="login"),  # not a distributor
}


def snapshot(world) -> dict:
    from django_rq import get_connection

    from catalog.models import CardKeyImport, Product, Supplier
    from commissions.models import AutoApprovalPolicy, CommissionTier, DepositRefund, SettlementRun
    from distribution.models import Appeal, Distributor
    from kamen.models import AuditLogEntry
    from orders.models import Order, Refund, Voucher
    from riskcontrol.models import BlacklistEntry, ReviewCase

    return {
        "audit entries (reveals are audited)": AuditLogEntry.objects.count(),
        "import": CardKeyImport.objects.get(pk=world.card_key_import.pk).status,
        "threshold": Product.objects.get(pk=world.product.pk).low_stock_threshold,
        "voucher": Voucher.objects.get(pk=world.voucher.pk).redeemed_at,
        "orders": list(Order.objects.order_by("pk").values_list("status", "refunded_amount")),
        "refunds": Refund.objects.count(),
        "review": ReviewCase.objects.get(pk=world.review_case.pk).status,
        "settlement runs": SettlementRun.objects.count(),
        "tiers": CommissionTier.objects.count(),
        "auto approval": AutoApprovalPolicy.objects.filter(is_enabled=True).count(),
        "blacklist": BlacklistEntry.objects.count(),
        "rq job": bool(get_connection("default").exists(world.rq_job.key)),
        "distributors": list(Distributor.objects.order_by("pk").values_list("status", flat=True)),
        "deposit refunds": list(DepositRefund.objects.order_by("pk").values_list("status", flat=True)),
        "appeals": Appeal.objects.count(),
        "suppliers": list(Supplier.objects.order_by("pk").values_list("name", "webhook_secret_key_id")),
    }


def test_state_changing_posts_refuse_roles_without_permission(world, caplog):
    caplog.set_level(logging.ERROR, logger="django.request")
    keys = {key: (route, name) for key, route, name in url_keys()}
    clients = {role: client_for(role, world, Client) for role in ROLES}
    before = snapshot(world)
    wrong = []
    for key, (allowed, data) in posts(world).items():
        route, name = keys[key]
        path = url_for(key, route, name, world)
        for role in sorted(set(ROLES) - roles(allowed)):
            expected = POST_REFUSAL.get(key, console(""))[role]
            got = outcome(clients[role].post(path, data))
            if got != expected:
                wrong.append(f"POST {key} {path} as {role}: got {got!r}, expected {expected!r}")
    assert wrong == [], "\n".join(wrong)
    assert snapshot(world) == before


def test_the_refused_posts_would_have_changed_something(world):
    """The POST walk's data is real: the owner posting the same forms does change the state."""
    keys = {key: (route, name) for key, route, name in url_keys()}
    owner = client_for("owner", world, Client)
    before = snapshot(world)
    for key in (
        "console:stock-threshold",
        "console:card-key-reveal",
        "admin:riskcontrol_reviewcase_decide",
        "admin:django_rq_delete_job",
        "admin:distribution_distributor_manage",
        "admin:commissions_autoapprovalpolicy_change",
        "admin:commissions_depositrefund_changelist",
        "console:upstream-import",
    ):
        route, name = keys[key]
        owner.post(url_for(key, route, name, world), posts(world)[key][1])
    after = snapshot(world)
    changed = {name for name in before if before[name] != after[name]}
    assert changed >= {
        "threshold", "audit entries (reveals are audited)", "review", "rq job", "distributors", "auto approval",
        "deposit refunds",
        "suppliers",
    }


# --- secrets: only with their permission -----------------------------------------------------------
def test_card_key_secrets_show_only_after_a_permitted_reveal(world):
    from catalog.services import reveal_card_key_secret

    secret = reveal_card_key_secret(card_key=world.card_key, actor=world.users["owner"])
    pages = [
        "/admin/catalog/cardkey/",
        f"/admin/catalog/cardkey/{world.card_key.pk}/change/",
        f"/console/card-keys/{world.card_key.pk}/reveal/",
        "/console/stock/",
        f"/admin/orders/order/{world.agent_order.pk}/change/",
    ]
    for role in STAFF:
        client = client_for(role, world, Client)
        for path in pages:
            assert secret not in client.get(path).content.decode(), f"{role} sees the secret on {path}"
    reveal = f"/console/card-keys/{world.card_key.pk}/reveal/"
    assert secret in client_for("owner", world, Client).post(reveal).content.decode()
    assert client_for("operator", world, Client).post(reveal).status_code == 403


def test_real_name_and_payout_data_show_masked_only(world):
    from .permission_world import BANK_CARD, ID_NUMBER

    pages = [
        f"/admin/riskcontrol/realnameverification/{world.real_name.pk}/change/",
        "/admin/riskcontrol/realnameverification/",
        f"/admin/commissions/payoutaccount/{world.payout_account.pk}/change/",
        f"/admin/commissions/withdrawal/{world.withdrawal.pk}/change/",
        f"/admin/distribution/distributor/{world.agent_child.pk}/change/",
    ]
    for role in STAFF:
        client = client_for(role, world, Client)
        for path in pages:
            page = client.get(path).content.decode()
            assert ID_NUMBER not in page and BANK_CARD not in page, f"{role} sees real-name data on {path}"
    agent = client_for("agent", world, Client)
    assert ID_NUMBER not in agent.get(f"/agent/team/{world.agent_child.pk}/").content.decode()
    # The masks are there for those allowed: the pages do show the records.
    assert world.real_name.id_number_mask in client_for("risk", world, Client).get(pages[0]).content.decode()


# --- unknown ids: every URL with parameters, every role, never a 5xx -------------------------------
UNKNOWN = {"int": "987654321", "str": "no-such-id", "slug": "no-such-slug", "path": "no/such/id"}


def unknown_kwargs(pattern) -> list[dict]:
    """Parameter values that name nothing: by converter for routes, a word and a number for
    regular expressions (django_rq, the admin's catch-all); and the same with every index
    (django_rq's queue, connection) at 0, the one that exists, so the ids after it are tried."""
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:
        names = list(converters)
        variants = [
            {
                name: UNKNOWN.get(type(converter).__name__.removesuffix("Converter").lower(), "no-such-id")
                for name, converter in converters.items()
            }
        ]
    else:
        names = list(pattern.pattern.regex.groupindex)
        variants = [dict.fromkeys(names, value) for value in ("no-such-id", "987654321")]
    if any(name.endswith("_index") for name in names):
        variants += [variant | {name: 0 for name in names if name.endswith("_index")} for variant in variants]
    return variants


def unknown_paths(world) -> list[str]:
    from django.contrib.contenttypes.models import ContentType

    paths = []
    for key, route, name in url_keys():
        if key.startswith("/") or not name:
            continue  # unnamed or shared routes: their fixed paths are in the table walk
        pattern = next(pattern for r, _n, pattern in walk() if r == route)
        for kwargs in unknown_kwargs(pattern):
            with contextlib.suppress(NoReverseMatch):  # a pattern that takes only one of the two
                paths.append(reverse(name, kwargs=kwargs))
    # The admin's "view on site" for every model, the RQ dashboard's table-less one among them.
    for content_type in ContentType.objects.all():
        for object_id in ("1", "987654321", "no-such-id"):
            paths.append(reverse("admin:view_on_site", args=[content_type.pk, object_id]))
    return sorted(set(paths) - {reverse("admin:logout")})


@pytest.mark.parametrize("role", ROLES)
def test_unknown_ids_are_never_a_server_error(role, world, caplog):
    """Every URL with parameters, filled with ids that name nothing, as every role, GET and
    POST: a 404 (or the role's refusal), never a 500."""
    caplog.set_level(logging.CRITICAL, logger="django.request")
    client = client_for(role, world, lambda: Client(raise_request_exception=False))
    errors = []
    for path in unknown_paths(world):
        for method in (client.get, client.post):
            status = method(path).status_code
            if status >= 500:
                errors.append(f"{method.__name__.upper()} {path}: {status}")
    assert errors == [], f"as {role}:\n" + "\n".join(errors)


def test_the_unknown_id_walk_reaches_the_pages_that_failed():
    """The walk covers what issue 14 found: django-rq's job, queue and worker pages with
    unknown ids (and, in unknown_paths, "view on site" for the table-less dashboard)."""
    paths = set()
    for _key, route, name in url_keys():
        if name in ("admin:django_rq_delete_job", "admin:django_rq_worker_details", "admin:django_rq_jobs"):
            pattern = next(pattern for r, _n, pattern in walk() if r == route)
            paths |= {reverse(name, kwargs=kwargs) for kwargs in unknown_kwargs(pattern)}
    assert {
        "/admin/django_rq/dashboard/queues/0/no-such-id/delete/",
        "/admin/django_rq/dashboard/workers/0/no-such-id/",
        "/admin/django_rq/dashboard/queues/987654321/",
    } <= paths
