"""The deposit page of the agent portal (/agent/deposit/, docs/adr/0023): what the grade asks
(the deposit, the first-order amount) and how far the distributor is; pay the deposit through
the gateway; ask for it back when leaving. Open to a distributor in any status — an applicant
pays here, a cleared member asks for their money back here. Views parse, call one service,
redirect."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from commissions import selectors as commission_selectors
from commissions.services import deposit_balance, new_deposit_refund_token, request_deposit_refund
from distribution.selectors import distributor_for_user
from kamen.parsing import is_ascii_digits
from kamen.site import site_url

from . import services
from .gateways import GatewayError
from .models import DepositPayment


def _distributor_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            login = reverse("distribution:agent-login")
            return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        viewer = distributor_for_user(request.user)
        if viewer is None:
            return render(request, "commissions/not_agent.html", {"viewer": viewer}, status=403)
        return view(request, viewer, *args, **kwargs)

    return wrapper


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [message for field in error.message_dict.values() for message in field]
    return list(error.messages)


def _pay(request, viewer) -> tuple[list[str], object]:
    try:
        _payment, start = services.start_deposit_payment(
            distributor_id=viewer.pk,
            amount=request.POST.get("amount", ""),
            notify_url=site_url(reverse("orders:payment-notify", args=[settings.ORDER_DEFAULT_GATEWAY])),
            return_url=site_url(reverse("orders:agent-deposit")),
            gateway_code=settings.ORDER_DEFAULT_GATEWAY,
        )
    except ValidationError as error:
        return _messages(error), None
    except GatewayError:
        return [_("支付通道暂时不可用，请稍后再试")], None
    return [], redirect(start.redirect_url or reverse("orders:agent-deposit"))


def _ask_refund(request, viewer) -> tuple[list[str], object]:
    raw = request.POST.get("payout_account", "")
    account = commission_selectors.payout_accounts(viewer).filter(pk=int(raw)).first() if is_ascii_digits(raw) else None
    try:
        request_deposit_refund(
            distributor=viewer,
            payout_account=account,
            token=request.POST.get("token", ""),
            reason=request.POST.get("reason", ""),
        )
    except ValidationError as error:
        return _messages(error), None
    messages.success(request, _("已提交保证金退还申请，商户审核通过后退出网络并退款"))
    return [], redirect("orders:agent-deposit")


@require_http_methods(["GET", "POST"])
@_distributor_required
def agent_deposit(request, viewer):
    errors: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "pay":
            errors, response = _pay(request, viewer)
        elif action == "refund":
            errors, response = _ask_refund(request, viewer)
        else:
            errors, response = [_("未知操作")], None
        if response is not None:
            return response
    return render(
        request,
        "orders/agent_deposit.html",
        {
            "viewer": viewer,
            "held": deposit_balance(viewer.pk),
            "owed": services.deposit_outstanding(viewer),
            "first_order_amount": viewer.grade.first_order_amount,
            "own_paid_total": services.own_paid_total(viewer.pk) if viewer.grade.first_order_amount else None,
            "payments": DepositPayment.objects.filter(distributor=viewer)[:20],
            "refunds": viewer.deposit_refunds.select_related("withdrawal")[:20],
            "payout_accounts": commission_selectors.payout_accounts(viewer),
            "token": new_deposit_refund_token(),
            "errors": errors,
        },
        status=400 if errors else 200,
    )
