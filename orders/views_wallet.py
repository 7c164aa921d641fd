"""Paying an order from the distributor's wallet: in the shop's cashier (the order page) and
in the agent portal (/agent/wallet/pay/). Views parse, call ``pay_with_wallet``, redirect."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import selectors as catalog_selectors
from commissions import selectors as commission_selectors
from commissions.services import active_distributor_of
from kamen.parsing import is_ascii_digits
from kamen.site import site_url

from . import selectors, services
from .gateways import GatewayError
from .models import StockPurchase, TopUp
from .views import _order_or_404


def _pay(request, order) -> bool:
    try:
        services.pay_with_wallet(order=order, payer=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return False
    messages.success(request, _("已用余额支付 ¥%(amount)s") % {"amount": order.total_amount})
    return True


@require_POST
def order_pay_wallet(request, order_no: str):
    """The cashier's "余额支付": the buyer's session (or signed link) opens the order, the
    logged-in distributor's balance pays it."""
    order = _order_or_404(request, order_no)
    if active_distributor_of(request.user) is None:
        messages.error(request, _("只有正常状态的分销商可以使用余额支付"))
    else:
        _pay(request, order)
    return redirect("orders:order-detail", order.order_no)


def _agent_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            login = reverse("distribution:agent-login")
            return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        viewer = active_distributor_of(request.user)
        if viewer is None:
            return render(request, "commissions/not_agent.html", {"viewer": viewer}, status=403)
        return view(request, viewer, *args, **kwargs)

    return wrapper


@require_GET
@_agent_required
def agent_wallet_pay(request, viewer):
    return render(
        request,
        "orders/agent_wallet_pay.html",
        {
            "viewer": viewer,
            "wallet": commission_selectors.wallet(viewer),
            "orders": selectors.payable_orders_of_distributor(distributor_id=viewer.pk)[:50],
        },
    )


@require_POST
@_agent_required
def agent_wallet_pay_order(request, viewer, order_no: str):
    order = selectors.payable_order_of_distributor(distributor_id=viewer.pk, order_no=order_no[:32])
    if order is None:
        raise Http404
    _pay(request, order)
    return redirect("orders:agent-wallet-pay")


@require_http_methods(["GET", "POST"])
@_agent_required
def agent_stock(request, viewer):
    """进货: the card-key products at the viewer's price, a purchase form, their purchases."""
    errors: list[str] = []
    if request.method == "POST":
        raw_product = request.POST.get("product", "")
        product = catalog_selectors.product_on_shelf(pk=int(raw_product)) if is_ascii_digits(raw_product) else None
        through_gateway = request.POST.get("pay") == "gateway"
        try:
            if through_gateway:
                purchase, start = services.start_stock_purchase_payment(
                    distributor_id=viewer.pk,
                    product=product,
                    quantity=request.POST.get("quantity", ""),
                    token=request.POST.get("token", ""),
                    notify_url=site_url(reverse("orders:payment-notify", args=[settings.ORDER_DEFAULT_GATEWAY])),
                    return_url=site_url(reverse("orders:agent-stock")),
                    gateway_code=settings.ORDER_DEFAULT_GATEWAY,
                )
            else:
                purchase = services.purchase_stock(
                    distributor_id=viewer.pk,
                    product=product,
                    quantity=request.POST.get("quantity", ""),
                    token=request.POST.get("token", ""),
                )
        except ValidationError as error:
            errors = (
                [message for messages_ in error.message_dict.values() for message in messages_]
                if hasattr(error, "error_dict")
                else list(error.messages)
            )
        except GatewayError:
            errors = [_("支付通道暂时不可用，请稍后再试")]
        else:
            if through_gateway:
                redirect_url = start.redirect_url if start is not None else ""
                return redirect(redirect_url or reverse("orders:agent-stock-detail", args=[purchase.purchase_no]))
            messages.success(request, _("进货成功：%(count)s 张卡密") % {"count": purchase.quantity})
            return redirect("orders:agent-stock-detail", purchase.purchase_no)
    products = services.stock_offers(distributor=viewer) if viewer.grade.may_buy_stock else []
    return render(
        request,
        "orders/agent_stock.html",
        {
            "viewer": viewer,
            "may_buy_stock": viewer.grade.may_buy_stock,
            "wallet": commission_selectors.wallet(viewer),
            "products": products,
            "purchases": StockPurchase.objects.filter(distributor=viewer)[:50],
            "token": services.new_stock_purchase_token(),
            "errors": errors,
            "max_quantity": services.STOCK_PURCHASE_MAX_QUANTITY,
        },
        status=400 if errors else 200,
    )


@require_GET
@_agent_required
def agent_stock_detail(request, viewer, purchase_no: str):
    purchase = StockPurchase.objects.filter(distributor=viewer, purchase_no=purchase_no[:32]).first()
    if purchase is None:
        raise Http404
    keys = services.revealed_stock_keys(distributor_id=viewer.pk, purchase=purchase)
    response = render(request, "orders/agent_stock_detail.html", {"viewer": viewer, "purchase": purchase, "keys": keys})
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@_agent_required
def agent_top_up(request, viewer):
    """预存款充值: the amount, then the payment gateway's cashier; credited on its notification."""
    errors: list[str] = []
    if request.method == "POST":
        try:
            _top_up, start = services.start_top_up(
                distributor_id=viewer.pk,
                amount=request.POST.get("amount", ""),
                notify_url=site_url(reverse("orders:payment-notify", args=[settings.ORDER_DEFAULT_GATEWAY])),
                return_url=site_url(reverse("orders:agent-top-up")),
                gateway_code=settings.ORDER_DEFAULT_GATEWAY,
            )
        except ValidationError as error:
            errors = (
                [message for field in error.message_dict.values() for message in field]
                if hasattr(error, "error_dict")
                else list(error.messages)
            )
        except GatewayError:
            errors = [_("支付通道暂时不可用，请稍后再试")]
        else:
            return redirect(start.redirect_url or reverse("orders:agent-top-up"))
    return render(
        request,
        "orders/agent_top_up.html",
        {
            "viewer": viewer,
            "wallet": commission_selectors.wallet(viewer),
            "top_ups": TopUp.objects.filter(distributor=viewer)[:20],
            "errors": errors,
            "form": request.POST if errors else None,
        },
        status=400 if errors else 200,
    )
