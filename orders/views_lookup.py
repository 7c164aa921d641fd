"""Buyer order look-up (自助查单) and the buyer's voucher pages.

Views parse, call one service, render. Nothing here shows a secret to a browser that has not
proved itself: the look-up needs the query password, and every order or voucher page needs a
session grant (from checkout or a look-up) or a signed link.
"""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from kamen.client_ip import client_ip
from orders.models import Order, Voucher
from orders.services.access import grant_order_access, has_order_access, order_in_link, signed_order_token
from orders.services.lookup import LookupFailed, LookupLocked, LookupUnavailable, lookup_orders, mask_contact
from orders.services.redemption import current_dynamic_code, voucher_qr_png, vouchers_for_buyer
from riskcontrol.guessing import check_lookup_allowed, lookup_failed, page_denied

RESULT_SESSION_KEY = "orders.lookup_result"


def _order_page_url(order: Order) -> str:
    """The buyer's order page (built with the checkout), opened with a signed token so it works
    in a browser whose session is gone by the time the link is used."""
    try:
        url = reverse("orders:order-detail", args=[order.order_no])
    except NoReverseMatch:
        url = f"/orders/{order.order_no}/"
    return f"{url}?t={signed_order_token(order)}"


@never_cache
@require_http_methods(["GET", "POST"])
def order_lookup(request):
    mode = request.POST.get("mode") or request.GET.get("mode") or "order_no"
    mode = mode if mode in {"order_no", "contact"} else "order_no"
    context = {"mode": mode, "values": {}, "errors": {}, "error": ""}
    if request.method == "GET":
        return render(request, "orders/lookup.html", context)

    identifier = request.POST.get("identifier", "")[:120]
    context["values"] = {"identifier": identifier}
    check_lookup_allowed(request=request)  # a guessing IP or device is refused (429)
    try:
        orders = lookup_orders(
            order_no=identifier if mode == "order_no" else "",
            contact=identifier if mode == "contact" else "",
            password=request.POST.get("password", ""),
            ip=client_ip(request),
        )
    except ValidationError as error:
        context["errors"] = error.message_dict
        return render(request, "orders/lookup.html", context, status=400)
    except (LookupLocked, LookupFailed) as error:
        lookup_failed(
            request=request,
            order_no=identifier.strip().upper() if mode == "order_no" else "",
            contact=identifier if mode == "contact" else "",
        )
        context["error"] = str(error)
        return render(request, "orders/lookup.html", context, status=429 if isinstance(error, LookupLocked) else 400)
    except LookupUnavailable as error:
        context["error"] = str(error)
        return render(request, "orders/lookup.html", context, status=400)
    for order in orders:
        grant_order_access(request=request, order=order)
    request.session[RESULT_SESSION_KEY] = [order.order_no for order in orders]
    return redirect("postsale:order-lookup-results")


@never_cache
@require_GET
def order_lookup_results(request):
    numbers = request.session.get(RESULT_SESSION_KEY, [])
    orders = [
        order
        for order in Order.objects.filter(order_no__in=numbers).select_related("product").order_by("-created_at", "-id")
        if has_order_access(request=request, order=order)
    ]
    if not orders:
        return redirect("postsale:order-lookup")
    voucher_orders = set(Voucher.objects.filter(order__in=orders).values_list("order_id", flat=True))
    rows = [
        {
            "order": order,
            "masked_contact": mask_contact(order.contact),
            "buyer_fields": sorted((order.buyer_fields or {}).items()),
            "has_vouchers": order.pk in voucher_orders,
        }
        for order in orders
    ]
    return render(request, "orders/lookup_results.html", {"rows": rows})


def _order_for_buyer(request, order_no: str) -> Order:
    order = Order.objects.select_related("product").filter(order_no=order_no).first()
    if order is None or not has_order_access(request=request, order=order):
        page_denied(request=request, order_no=order_no[:32], linked_order_no=order_in_link(request))
        raise Http404
    return order


@never_cache
@require_GET
def order_open(request, order_no: str):
    """From a look-up result to the order page, with a fresh signed link."""
    order = _order_for_buyer(request, order_no)
    return redirect(_order_page_url(order))


@never_cache
@require_GET
def order_vouchers(request, order_no: str):
    order = _order_for_buyer(request, order_no)
    if request.GET.get("t"):
        grant_order_access(request=request, order=order)  # the QR images load with the session
    context = {"order": order, "vouchers": vouchers_for_buyer(order=order), "order_url": _order_page_url(order)}
    return render(request, "orders/redeem_buyer_vouchers.html", context)


def _voucher_for_buyer(request, pk: int) -> Voucher:
    voucher = Voucher.objects.select_related("order").filter(pk=pk).first()
    if voucher is None or not has_order_access(request=request, order=voucher.order):
        page_denied(
            request=request,
            order_no=voucher.order.order_no if voucher else f"voucher:{pk}"[:32],
            linked_order_no=order_in_link(request),
        )
        raise Http404
    return voucher


@never_cache
@require_GET
def voucher_qr(request, pk: int):
    voucher = _voucher_for_buyer(request, pk)
    response = HttpResponse(voucher_qr_png(voucher=voucher), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@never_cache
@require_GET
def voucher_dynamic_code(request, pk: int):
    voucher = _voucher_for_buyer(request, pk)
    if not voucher.requires_dynamic_code or voucher.is_redeemed:
        return JsonResponse({"code": "", "seconds_left": 0, "is_redeemed": voucher.is_redeemed})
    code, seconds_left = current_dynamic_code(voucher=voucher)
    return JsonResponse({"code": code, "seconds_left": seconds_left, "is_redeemed": False})
