"""Buyer-facing order pages, the payment notify endpoint and the sandbox cashier.

Views parse, call one service, render. Secrets are shown only to the browser that placed the
order (its session) or holds a signed link, never for an order number alone.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors as catalog_selectors
from catalog.validation import sanitize_description
from commissions import selectors as commission_selectors
from commissions.services import active_distributor_of
from kamen.client_ip import client_ip
from kamen.site import site_url
from orders.services.access import order_in_link
from orders.services.redemption import vouchers_for_buyer
from riskcontrol.guessing import page_denied

from . import selectors, services
from .gateways import GatewayError, UnknownGateway
from .middleware import referral_from_request
from .models import OrderStatus, SandboxPayment, SandboxPaymentStatus


def _checkout_owner(request) -> str:
    """Who may get an order back for its checkout token: this browser, named by its CSRF
    secret (every checkout post carries it, and it exists before the session does, so a
    first double submit still finds its order), else its session."""
    return request.META.get("CSRF_COOKIE") or request.session.session_key or ""


def _grant(request, order_no: str) -> None:
    placed = [number for number in request.session.get(selectors.SESSION_KEY, []) if number != order_no]
    request.session[selectors.SESSION_KEY] = (placed + [order_no])[-50:]


def _notify_url(request, gateway_code: str) -> str:
    # The site's public address, not the answering host's: the gateway keeps the URL and calls
    # it later, when that host may be gone.
    return site_url(reverse("orders:payment-notify", args=[gateway_code]))


def _begin_payment(request, order):
    order_url = reverse("orders:order-detail", args=[order.order_no])
    try:
        start = services.start_payment(
            order=order,
            notify_url=_notify_url(request, order.payment_gateway or "sandbox"),
            return_url=site_url(order_url),
            client_ip=client_ip(request) or "",
        )
    except (ValidationError, GatewayError, UnknownGateway):
        return redirect(order_url)
    if start.qr_text and not start.redirect_url:
        # WeChat Pay Native and the like: show the code to scan; the page follows the order.
        context = {
            "order": order,
            "qr_svg": _qr_svg(start.qr_text),
            "status_url": selectors.order_status_url(order_no=order.order_no),
        }
        return render(request, "orders/pay_qr.html", context)
    return redirect(start.redirect_url or order_url)


def _qr_svg(text: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return mark_safe(image.to_string(encoding="unicode"))  # drawn by us: paths only, no text


@require_POST
def checkout(request, pk: int):
    product = catalog_selectors.product_to_buy(pk=pk)
    if product is None:
        raise Http404
    fields = {name[len("field_") :]: value for name, value in request.POST.items() if name.startswith("field_")}
    try:
        order = services.place_order(
            product=product,
            quantity=request.POST.get("quantity", ""),
            contact=request.POST.get("contact", ""),
            query_password=request.POST.get("query_password", ""),
            buyer_fields=fields,
            recharge_target=request.POST.get("recharge_target", ""),
            checkout_token=request.POST.get("checkout_token", "")[:64] or None,
            checkout_owner=_checkout_owner(request),
            referral=referral_from_request(request),
            buyer_ip=client_ip(request),
            gateway=settings.ORDER_DEFAULT_GATEWAY,
            buyer_user=request.user,
        )
    except ValidationError as error:
        errors = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
        product = catalog_selectors.product_on_shelf(pk=pk) or product  # the page again: images, stock
        context = {
            "product": product,
            "description": mark_safe(sanitize_description(product.description)),
            "checkout": {
                "errors": errors,
                "values": request.POST,
                "fields": fields,
                "token": services.new_checkout_token(),
            },
        }
        return render(request, "catalog/shop_product.html", context, status=400)
    _grant(request, order.order_no)
    if order.status != OrderStatus.PENDING_PAYMENT:
        return redirect("orders:order-detail", order.order_no)
    return _begin_payment(request, order)


def _order_or_404(request, order_no: str):
    order = selectors.order_for_buyer(request=request, order_no=order_no)
    if order is None:
        # guessing: counted, maybe refused
        page_denied(request=request, order_no=order_no[:32], linked_order_no=order_in_link(request))
        raise Http404
    if request.GET.get("t"):
        _grant(request, order.order_no)  # the signed link opens the page; polling needs the session
    return order


def _wallet_of(user) -> dict | None:
    """The logged-in active distributor's balances, for the cashier's "余额支付"; else None."""
    distributor = active_distributor_of(user)
    return commission_selectors.wallet(distributor) if distributor is not None else None


@never_cache
@require_GET
def order_detail(request, order_no: str):
    order = _order_or_404(request, order_no)
    context = {
        "order": order,
        "deliveries": selectors.deliveries_for_buyer(order=order),
        # Vouchers are issued with the delivery that completes an order: none before that.
        "vouchers": vouchers_for_buyer(order=order) if order.completed_at and selectors.has_vouchers(order) else [],
        "buyer_fields": selectors.buyer_fields_for_display(order=order),
        "summary": selectors.order_status_summary(order=order),
        "status_url": selectors.order_status_url(order_no=order.order_no),
        "is_payable": order.status == OrderStatus.PENDING_PAYMENT and order.expires_at > timezone.now(),
        "wallet": _wallet_of(request.user),
    }
    return render(request, "orders/order_detail.html", context)


@never_cache
@require_GET
def order_status(request, order_no: str):
    """The order page's polling. With the signed ``s`` the page put in its URL: one query, no
    session; without it, the session or signed link as for the page itself."""
    token = request.GET.get("s", "")
    if not token:
        order = _order_or_404(request, order_no)
        return JsonResponse(selectors.order_status_summary(order=order))
    summary = None
    if selectors.status_token_is_valid(order_no=order_no, token=token):
        summary = selectors.order_status_by_number(order_no=order_no)
    if summary is None:
        # guessing: counted, maybe refused
        page_denied(request=request, order_no=order_no[:32], linked_order_no=order_in_link(request))
        raise Http404
    return JsonResponse(summary)


@require_POST
def order_pay(request, order_no: str):
    order = _order_or_404(request, order_no)
    return _begin_payment(request, order)


@require_POST
def order_sync(request, order_no: str):
    """The buyer says they paid: ask the gateway now (active query) instead of waiting."""
    order = _order_or_404(request, order_no)
    if order.status in (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED):
        services.sync_payment_status(order=order)
    return redirect("orders:order-detail", order.order_no)


@csrf_exempt
@require_POST
def payment_notify(request, gateway: str):
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        result = services.record_payment_notification(
            gateway_code=gateway, body=request.body, headers=headers, source_ip=client_ip(request)
        )
    except UnknownGateway:
        raise Http404 from None
    except services.NotificationThrottled as throttled:
        response = HttpResponse("too many unverified notifications", status=429, content_type="text/plain")
        response["Retry-After"] = str(throttled.retry_after)
        return response
    return HttpResponse(result.answer.body, status=result.answer.status, content_type=result.answer.content_type)


# --- The sandbox gateway's cashier (the sandbox's own page, not Kamen's) ----------------------
@never_cache
def sandbox_cashier(request, trade_no: str):
    from .gateways.sandbox import complete_sandbox_payment

    if not settings.SANDBOX_GATEWAY_ENABLED:
        raise Http404
    payment = get_object_or_404(SandboxPayment, trade_no=trade_no)
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("pay", "fail"):
            complete_sandbox_payment(trade_no=trade_no, succeeded=action == "pay")
        if payment.return_url and url_has_allowed_host_and_scheme(
            payment.return_url,
            allowed_hosts={request.get_host(), urlsplit(settings.SITE_URL).netloc},
            require_https=request.is_secure(),
        ):
            return redirect(payment.return_url)
        return redirect("orders:sandbox-cashier", trade_no)
    return render(
        request,
        "orders/sandbox_cashier.html",
        {"payment": payment, "is_pending": payment.status == SandboxPaymentStatus.PENDING},
    )
