"""The redemption counter (核销) in the merchant console: type or scan a code, redeem it once."""

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from kamen.client_ip import client_ip
from orders.services.redemption import VoucherRefused, redeem_voucher

STORE_SESSION_KEY = "orders.redeem_store"


@never_cache
@staff_member_required
@permission_required("orders.redeem_voucher", raise_exception=True)
@require_http_methods(["GET", "POST"])
def redeem(request):
    store_label = request.session.get(STORE_SESSION_KEY, "")
    context = {
        "title": _("券码核销"),
        "values": {"code": request.GET.get("code", "")[:64], "dynamic_code": "", "store_label": store_label},
        "errors": {},
        "refusal": "",
        "redeemed": None,
    }
    if request.method == "GET":
        return render(request, "orders/redeem.html", context)

    values = {name: request.POST.get(name, "")[:64] for name in ("code", "dynamic_code", "store_label")}
    context["values"] = values
    try:
        voucher = redeem_voucher(
            code=values["code"],
            dynamic_code=values["dynamic_code"],
            actor=request.user,
            store_label=values["store_label"],
            ip=client_ip(request),
            request=request,
        )
    except ValidationError as error:
        context["errors"] = error.message_dict
        return render(request, "orders/redeem.html", context, status=400)
    except VoucherRefused as refusal:
        context["refusal"] = str(refusal)
        return render(request, "orders/redeem.html", context, status=409)
    request.session[STORE_SESSION_KEY] = values["store_label"].strip()
    context["redeemed"] = voucher
    context["values"] = {"code": "", "dynamic_code": "", "store_label": values["store_label"].strip()}
    return render(request, "orders/redeem.html", context)
