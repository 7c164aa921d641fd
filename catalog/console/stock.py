"""Stock views in the console: the stock overview (counts, thresholds, alerts) and revealing one
secret (card key or reusable key; permission + audit)."""

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from catalog import selectors, services
from catalog.models import CardKey, Product, ProductType, ReusableCardKey

VIEW_PERMISSION = "catalog.view_cardkey"
THRESHOLD_PERMISSION = "catalog.change_product"


@never_cache
@staff_member_required
@permission_required("catalog.reveal_cardkey_secret", raise_exception=True)
def card_key_reveal(request, pk):
    """GET asks for confirmation; only a POST decrypts, so a prefetch or a link never reveals."""
    card_key = get_object_or_404(CardKey.objects.select_related("product"), pk=pk)
    secret = None
    if request.method == "POST":
        secret = services.reveal_card_key_secret(card_key=card_key, actor=request.user, request=request)
    return render(
        request,
        "catalog/console/card_key_reveal.html",
        {"card_key": card_key, "secret": secret, "title": _("查看卡密")},
    )


@never_cache
@staff_member_required
@permission_required("catalog.reveal_cardkey_secret", raise_exception=True)
def reusable_key_reveal(request, pk):
    """The shared secret of a reusable key: the same confirmation, permission and audit."""
    reusable_key = get_object_or_404(ReusableCardKey.objects.select_related("product"), pk=pk)
    secret = None
    if request.method == "POST":
        secret = services.reveal_reusable_key_secret(reusable_key=reusable_key, actor=request.user, request=request)
    return render(
        request,
        "catalog/console/card_key_reveal.html",
        {"card_key": reusable_key, "secret": secret, "title": _("查看循环卡密")},
    )


@staff_member_required
@permission_required(VIEW_PERMISSION, raise_exception=True)
def stock_overview(request):
    rows = selectors.stock_overview()
    totals = {
        name: sum(getattr(row, name) for row in rows)
        for name in ("available_count", "reserved_count", "sold_count", "void_count", "expired_count")
    }
    return render(
        request,
        "catalog/console/stock.html",
        admin.site.each_context(request)
        | {
            "title": _("库存总览"),
            "rows": rows,
            "totals": totals,
            "open_alerts": sum(1 for row in rows if row.open_alert_at),
            "can_edit_threshold": request.user.has_perm(THRESHOLD_PERMISSION),
            "can_import": request.user.has_perm("catalog.import_cardkeys"),
        },
    )


@require_POST
@staff_member_required
@permission_required(THRESHOLD_PERMISSION, raise_exception=True)
def stock_threshold(request, pk):
    """Set one product's low-stock threshold (audited by update_product), then re-check its
    level so the alert opens or resolves at once."""
    product = get_object_or_404(Product, pk=pk, product_type=ProductType.CARD_KEY)
    raw = request.POST.get("low_stock_threshold", "").strip()
    if not raw:
        messages.error(request, _("“%(name)s”：请填写预警值") % {"name": product.name})
        return redirect("console:stock")
    try:
        services.update_product(product=product, actor=request.user, request=request, low_stock_threshold=raw)
    except ValidationError as error:
        messages.error(request, _("“%(name)s”：%(errors)s") % {"name": product.name, "errors": " ".join(error.messages)})
    except PermissionDenied as error:
        messages.error(request, str(error))
    else:
        services.check_stock_level(product=product)
        messages.success(
            request,
            _("“%(name)s”的预警值已设为 %(value)s") % {"name": product.name, "value": product.low_stock_threshold},
        )
    return redirect("console:stock")


urlpatterns = [
    path("card-keys/<int:pk>/reveal/", card_key_reveal, name="card-key-reveal"),
    path("reusable-keys/<int:pk>/reveal/", reusable_key_reveal, name="reusable-key-reveal"),
    path("stock/", stock_overview, name="stock"),
    path("stock/<int:pk>/threshold/", stock_threshold, name="stock-threshold"),
]
