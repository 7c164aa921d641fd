"""Agent portal: wallet, statements, withdrawals, tax statements (/agent/wallet/).

Every read goes through a selector that takes the acting distributor; views parse, call one
service, render.
"""

from datetime import date
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from distribution.selectors import distributor_for_user

from . import selectors, services
from .forms import PayoutAccountForm, WithdrawalForm


def _login_url() -> str:
    try:
        return reverse("distribution:agent-login")
    except NoReverseMatch:
        from django.conf import settings
        from django.shortcuts import resolve_url

        return resolve_url(settings.LOGIN_URL)


def distributor_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(
                f"{_login_url()}?{urlencode({'next': request.get_full_path()})}"
            )
        viewer = distributor_for_user(request.user)
        if viewer is None or viewer.status != "active":
            return render(
                request, "commissions/not_agent.html", {"viewer": viewer}, status=403
            )
        return view(request, viewer, *args, **kwargs)

    return wrapper


def _messages(error: ValidationError) -> list[str]:
    return list(error.messages)


@distributor_required
def wallet(request, viewer):
    return render(
        request,
        "commissions/wallet.html",
        {
            "viewer": viewer,
            "wallet": selectors.wallet(viewer),
            "recent": selectors.statement_lines(viewer)[:5],
            "is_held": services.lifecycle.has_active_hold(viewer.pk),
        },
    )


@distributor_required
def statements(request, viewer):
    page = Paginator(selectors.statement_lines(viewer), 30).get_page(
        request.GET.get("page")
    )
    return render(
        request, "commissions/statements.html", {"viewer": viewer, "page": page}
    )


@distributor_required
def withdrawals(request, viewer):
    page = Paginator(selectors.withdrawals(viewer), 30).get_page(
        request.GET.get("page")
    )
    return render(
        request, "commissions/withdrawals.html", {"viewer": viewer, "page": page}
    )


@distributor_required
@require_http_methods(["GET", "POST"])
def withdrawal_create(request, viewer):
    accounts = list(selectors.payout_accounts(viewer))
    errors = []
    if request.method == "POST":
        form = WithdrawalForm(request.POST, accounts=accounts)
        if form.is_valid():
            account = next(
                (a for a in accounts if a.pk == form.cleaned_data["payout_account"]),
                None,
            )
            try:
                withdrawal = services.request_withdrawal(
                    distributor=viewer,
                    payout_account=account,
                    amount=form.cleaned_data["amount"],
                    token=form.cleaned_data["token"],
                )
            except ValidationError as error:
                errors = _messages(error)
            else:
                if withdrawal.auto_decision == "approved":
                    note = _("提现已自动审核通过：¥%(amount)s，正在打款")
                else:
                    note = _("提现申请已提交：¥%(amount)s，待财务审核")
                messages.success(request, note % {"amount": withdrawal.amount})
                return redirect("commissions:withdrawals")
        else:
            errors = [
                message
                for field_errors in form.errors.values()
                for message in field_errors
            ]
        form = WithdrawalForm(
            initial={
                **request.POST.dict(),
                "token": request.POST.get("token") or services.new_request_token(),
            },
            accounts=accounts,
        )
    else:
        form = WithdrawalForm(
            initial={"token": services.new_request_token()}, accounts=accounts
        )
    return render(
        request,
        "commissions/withdrawal_form.html",
        {
            "viewer": viewer,
            "form": form,
            "errors": errors,
            "wallet": selectors.wallet(viewer),
            "accounts": accounts,
        },
        status=400 if errors else 200,
    )


@distributor_required
@require_http_methods(["GET", "POST"])
def payout_account_create(request, viewer):
    errors = []
    form = PayoutAccountForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.add_payout_account(distributor=viewer, **form.cleaned_data)
            except ValidationError as error:
                errors = _messages(error)
            else:
                messages.success(request, _("收款账户已添加"))
                return redirect("commissions:withdrawal-create")
        else:
            errors = [
                message
                for field_errors in form.errors.values()
                for message in field_errors
            ]
    return render(
        request,
        "commissions/payout_account_form.html",
        {"viewer": viewer, "form": form, "errors": errors},
        status=400 if errors else 200,
    )


@distributor_required
def tax_statements(request, viewer):
    return render(
        request,
        "commissions/tax_statements.html",
        {"viewer": viewer, "months": selectors.monthly_tax_statements(viewer)},
    )


def month_or_404(year: int, month: int) -> date:
    if not (2000 <= year <= 9999 and 1 <= month <= 12):
        raise Http404
    return date(year, month, 1)


@distributor_required
def tax_certificate(request, viewer, year: int, month: int):
    """The month's tax statement, printable (the browser's print saves it as a PDF)."""
    certificate = selectors.tax_certificate(distributor=viewer, month=month_or_404(year, month))
    if certificate is None:
        raise Http404
    return render(request, "commissions/tax_certificate.html", {"certificate": certificate})


@csrf_exempt
@require_POST
def payout_notify(request, method: str):
    """Alipay's / WeChat Pay's payout result notification (signed by the provider)."""
    from .models import PayoutMethod

    if method not in PayoutMethod.values:
        raise Http404
    answer = services.record_payout_notification(
        method=method, body=request.body, headers={key.lower(): value for key, value in request.headers.items()}
    )
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)


def wallet_panel(viewer) -> dict:
    """The agent portal dashboard's wallet: pending / available / frozen from the cached
    balances, one query (``distribution.views.add_dashboard_panel``)."""
    return {"wallet": selectors.wallet(viewer)}
