"""Paying an order from the distributor's wallet: in the shop's cashier (the order page) and
in the agent portal (/agent/wallet/pay/). Views parse, call ``pay_with_wallet``, redirect."""

from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from commissions import selectors as commission_selectors
from commissions.services import active_distributor_of

from . import selectors, services
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
