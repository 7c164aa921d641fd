"""The agent portal (/agent/), the join page, referral redirects and sub-store pages.

Views parse, call one service or selector, render. Every portal read goes through a selector
that takes the acting distributor, so a member or order outside their subtree is a 404.
"""

from decimal import Decimal
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from catalog import selectors as catalog_selectors
from kamen.parsing import is_ascii_digits
from kamen.site import site_url

from . import selectors, services
from .models import (
    Channel,
    Distributor,
    DistributorStatus,
    Invitation,
    ReferralLink,
    SubStore,
    SubStorePrice,
)
from .services import promotion

LOGIN_URL = "distribution:agent-login"


class AgentLoginView(LoginView):
    template_name = "distribution/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        return reverse("distribution:agent-dashboard")


class AgentLogoutView(LogoutView):
    next_page = LOGIN_URL


def distributor_required(view):
    """Logged in, a distributor, and active; otherwise the login page or a status page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(
                f"{reverse(LOGIN_URL)}?{urlencode({'next': request.get_full_path()})}"
            )
        viewer = selectors.distributor_for_user(request.user)
        if viewer is None or viewer.status != DistributorStatus.ACTIVE:
            return render(
                request, "distribution/status.html", {"viewer": viewer}, status=403
            )
        request.distributor = viewer
        return view(request, viewer, *args, **kwargs)

    return wrapper


def _errors(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [
            message
            for messages_ in error.message_dict.values()
            for message in messages_
        ]
    return list(error.messages)


def _chart(figures) -> dict:
    """Bars for an inline SVG: no JavaScript, scaled to the best day."""
    top = max((figure.amount for figure in figures), default=Decimal(0)) or Decimal(1)
    width, height = 300, 100
    step = width / max(len(figures), 1)
    bars = []
    for index, figure in enumerate(figures):
        bar_height = float(figure.amount / top) * (height - 4)
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - bar_height, 1),
                "w": round(step - 2, 1),
                "h": round(bar_height, 1),
                "day": figure.day,
                "amount": figure.amount,
            }
        )
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "top": top if top != Decimal(1) else Decimal(0),
    }


# What apps above distribution add to the portal's dashboard: ``provider(viewer) -> dict``,
# registered in their AppConfig.ready() (commissions: the wallet).
_DASHBOARD_PANELS: list = []


def add_dashboard_panel(provider) -> None:
    if provider not in _DASHBOARD_PANELS:
        _DASHBOARD_PANELS.append(provider)


@distributor_required
def dashboard(request, viewer):
    figures = selectors.dashboard(viewer)
    context = {"viewer": viewer, "figures": figures, "chart": _chart(figures["chart"])}
    for provider in _DASHBOARD_PANELS:
        context |= provider(viewer)
    return render(request, "distribution/dashboard.html", context)


@distributor_required
def team(request, viewer, pk=None):
    member = viewer if pk is None else selectors.team_member(viewer, pk)
    if member.pk != viewer.pk:
        member.own_sales = selectors.team_sales(member)["amount"]
    children = selectors.team_children(viewer, member)
    trail = selectors.trail(viewer, member)
    return render(
        request,
        "distribution/team.html",
        {"viewer": viewer, "member": member, "children": children, "trail": trail},
    )


@distributor_required
def orders(request, viewer):
    page = Paginator(selectors.network_orders(viewer), 20).get_page(
        request.GET.get("page")
    )
    for order in page:
        order.masked_contact = selectors.mask_contact(order.contact)
    return render(request, "distribution/orders.html", {"viewer": viewer, "page": page})


@distributor_required
def order_detail(request, viewer, order_no):
    order = selectors.network_order(viewer, order_no)
    order.masked_contact = selectors.mask_contact(order.contact)
    seller = selectors.team_member(viewer, order.distributor_id)
    return render(
        request,
        "distribution/order_detail.html",
        {"viewer": viewer, "order": order, "seller": seller},
    )


@distributor_required
@require_http_methods(["GET", "POST"])
def store(request, viewer):
    sub_store = SubStore.objects.filter(distributor=viewer).first()
    errors: list[str] = []
    if request.method == "POST":
        try:
            if request.POST.get("action") == "price":
                product_pk = request.POST.get("product", "")
                product = (
                    catalog_selectors.product_on_shelf(pk=int(product_pk))
                    if is_ascii_digits(product_pk)
                    else None
                )
                if product is None:
                    raise Http404
                services.set_sub_store_price(
                    distributor=viewer,
                    product=product,
                    price=request.POST.get("price", ""),
                )
                messages.success(
                    request, _("已保存“%(name)s”的售价") % {"name": product.name}
                )
            else:
                services.save_sub_store(
                    distributor=viewer,
                    name=request.POST.get("name", ""),
                    slug=request.POST.get("slug", ""),
                    notice=request.POST.get("notice", ""),
                    is_open=request.POST.get("is_open") == "on",
                )
                messages.success(request, _("分站设置已保存"))
            return redirect("distribution:agent-store")
        except (ValidationError, PermissionDenied) as error:
            errors = (
                _errors(error) if isinstance(error, ValidationError) else [str(error)]
            )
    rows = []
    show_cost = selectors.may_see_cost_prices(viewer)
    if sub_store is not None:
        prices = dict(
            SubStorePrice.objects.filter(sub_store=sub_store).values_list(
                "product_id", "price"
            )
        )
        for product in catalog_selectors.products_on_shelf():
            rows.append(
                {
                    "product": product,
                    "cost": services.cost_price_for(
                        distributor=viewer, product=product
                    )
                    if show_cost
                    else None,
                    "ceiling": services.resale_ceiling_for(product),
                    "price": prices.get(product.pk),
                }
            )
    share_url = (
        request.build_absolute_uri(
            reverse("distribution:sub-store", args=[sub_store.slug])
        )
        if sub_store
        else ""
    )
    return render(
        request,
        "distribution/store.html",
        {
            "viewer": viewer,
            "sub_store": sub_store,
            "rows": rows,
            "errors": errors,
            "share_url": share_url,
            "show_cost": show_cost,
            "form": request.POST if errors else None,
        },
    )


def _link_url(request, link: ReferralLink, product=None) -> str:
    if product is not None:
        return request.build_absolute_uri(
            reverse("distribution:referral-product", args=[link.code, product.pk])
        )
    return request.build_absolute_uri(
        reverse("distribution:referral", args=[link.code])
    )


def _public_link_url(link: ReferralLink, product=None) -> str:
    """The link as the site's public address (SITE_URL) spells it, whichever host drew the
    poster, so a cached poster carries the same QR code on every host."""
    if product is not None:
        path = reverse("distribution:referral-product", args=[link.code, product.pk])
    else:
        path = reverse("distribution:referral", args=[link.code])
    return site_url(path)


@distributor_required
@require_http_methods(["GET", "POST"])
def links(request, viewer):
    if request.method == "POST":
        try:
            services.create_referral_link(
                distributor=viewer,
                channel=request.POST.get("channel", ""),
                label=request.POST.get("label", ""),
            )
            return redirect("distribution:agent-links")
        except ValidationError as error:
            for message in _errors(error):
                messages.error(request, message)
    rows = selectors.referral_links(viewer)
    for row in rows:
        row["url"] = _link_url(request, row["link"])
    invite_url = (
        request.build_absolute_uri(
            reverse("distribution:join", args=[viewer.invite_code])
        )
        if viewer.grade.may_recruit
        else ""
    )
    return render(
        request,
        "distribution/links.html",
        {
            "viewer": viewer,
            "rows": rows,
            "channels": Channel.choices,
            "invite_url": invite_url,
        },
    )


def _poster_link(viewer: Distributor) -> ReferralLink:
    """The link a poster carries: the sub-store's if there is one, else the WeChat link."""
    link = ReferralLink.objects.filter(
        distributor=viewer, sub_store__isnull=False
    ).first()
    return link or services.create_referral_link(
        distributor=viewer, channel=Channel.WECHAT
    )


@distributor_required
def posters(request, viewer):
    products = catalog_selectors.products_on_shelf()
    return render(
        request, "distribution/posters.html", {"viewer": viewer, "products": products}
    )


@distributor_required
def poster_image(request, viewer, product_pk):
    product = catalog_selectors.product_on_shelf(pk=product_pk)
    if product is None:
        raise Http404
    price = (
        services.sub_store_unit_price(distributor=viewer, product=product)
        or product.retail_price
    )
    link = _poster_link(viewer)
    try:
        poster = promotion.poster_for(
            distributor=viewer,
            product=product,
            price=price,
            link_url=_public_link_url(link, product),
        )
    except promotion.FontNotFound as error:
        return render(
            request,
            "distribution/status.html",
            {"viewer": viewer, "problem": str(error)},
            status=503,
        )
    response = HttpResponse(poster.png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    if request.GET.get("download"):
        response["Content-Disposition"] = (
            f'attachment; filename="poster-{product.pk}.png"'
        )
    return response


@distributor_required
@require_http_methods(["GET", "POST"])
def copy(request, viewer):
    errors: list[str] = []
    draft = ""
    if request.method == "POST":
        draft = request.POST.get("body", "")
        try:
            promotion.publish_custom_copy(
                distributor=viewer, channel=request.POST.get("channel", ""), body=draft
            )
            messages.success(request, _("文案已通过合规检查并发布"))
            return redirect("distribution:agent-copy")
        except ValidationError as error:
            errors = _errors(error)
    templates = []
    for template in promotion.copy_templates():
        link = services.create_referral_link(
            distributor=viewer, channel=template.channel
        )
        templates.append(
            {
                "template": template,
                "text": promotion.fill_copy(
                    body=template.body, link=_link_url(request, link)
                ),
            }
        )
    published = viewer.copies.filter(is_published=True)[:20]
    return render(
        request,
        "distribution/copy.html",
        {
            "viewer": viewer,
            "templates": templates,
            "published": published,
            "errors": errors,
            "draft": draft,
            "channels": Channel.choices,
        },
    )


# --- joining ---------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
def join(request, code):
    """Join through an invite link: a visitor signs up, a logged-in user just confirms."""
    code = services.codes.normalize_code(code)
    invitation = (
        Invitation.objects.select_related("inviter__user").filter(code=code).first()
    )
    inviter = (
        invitation.inviter
        if invitation
        else Distributor.objects.select_related("user").filter(invite_code=code).first()
    )
    errors: list[str] = []
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                distributor = services.join_network(
                    user=request.user, code=code, region=request.POST.get("region", "")
                )
            else:
                distributor = services.register_and_join(
                    username=request.POST.get("username", ""),
                    password=request.POST.get("password", ""),
                    phone=request.POST.get("phone", ""),
                    display_name=request.POST.get("display_name", ""),
                    region=request.POST.get("region", ""),
                    code=code,
                )
                login(
                    request,
                    distributor.user,
                    backend="django.contrib.auth.backends.ModelBackend",
                )
            if distributor.status == DistributorStatus.ACTIVE:
                messages.success(request, _("欢迎加入！"))
                return redirect("distribution:agent-dashboard")
            return render(request, "distribution/status.html", {"viewer": distributor})
        except ValidationError as error:
            errors = _errors(error)
    # A staff account is told at once that it cannot join (the service refuses the post too).
    may_join = not request.user.is_authenticated or services.tree.staff_may_join(request.user)
    if not may_join and not errors:
        errors = [services.tree.staff_join_refusal()]
    return render(
        request,
        "distribution/join.html",
        {"code": code, "inviter": inviter, "errors": errors, "form": request.POST, "may_join": may_join},
    )


# --- referral redirects and sub-stores -------------------------------------------------------
def _with_ref(url: str, link: ReferralLink) -> str:
    """``?ref=CODE&ch=CHANNEL``: the orders app's referral middleware turns it into the
    attribution cookie checkout reads."""
    return f"{url}?{urlencode({'ref': link.code, 'ch': link.channel})}"


def referral(request, code, product_pk=None):
    """A shared link: count the click, then go to the sub-store (or the shop) with ``?ref=`` so
    the referral middleware remembers who brought the buyer."""
    link = services.active_link(code)
    if link is None:
        return redirect("catalog:shop-home")
    services.record_referral_click(code=link.code)
    store_row = SubStore.objects.filter(
        distributor_id=link.distributor_id, is_open=True
    ).first()
    if store_row is not None:
        target = (
            reverse("distribution:sub-store-product", args=[store_row.slug, product_pk])
            if product_pk
            else reverse("distribution:sub-store", args=[store_row.slug])
        )
    else:
        target = (
            reverse("catalog:product-detail", args=[product_pk])
            if product_pk
            else reverse("catalog:shop-home")
        )
    return redirect(_with_ref(target, link))


def _open_store(slug) -> tuple[SubStore, ReferralLink]:
    store_row = get_object_or_404(
        SubStore.objects.select_related("distributor__grade", "distributor__user"),
        slug=slug,
        is_open=True,
        distributor__status=DistributorStatus.ACTIVE,
    )
    link = ReferralLink.objects.filter(sub_store=store_row, is_active=True).first()
    if link is None:
        raise Http404
    return store_row, link


def sub_store(request, slug):
    """The sub-store's front page. A direct visit (no ``ref``: typed or shared as is) counts as
    a click on the store's link; one that came through ``/r/<code>/`` was counted there."""
    store_row, link = _open_store(slug)
    if "ref" not in request.GET:
        services.record_referral_click(code=link.code)
    prices = dict(
        SubStorePrice.objects.filter(sub_store=store_row).values_list(
            "product_id", "price"
        )
    )
    products = []
    for product in catalog_selectors.products_on_shelf():
        price = (
            services.sub_store_unit_price(
                distributor=store_row.distributor, product=product
            )
            if product.pk in prices
            else None
        )
        products.append(
            {
                "product": product,
                "price": price or product.retail_price,
                "url": _with_ref(
                    reverse("distribution:sub-store-product", args=[slug, product.pk]),
                    link,
                ),
            }
        )
    return render(
        request,
        "distribution/sub_store.html",
        {"store": store_row, "products": products, "link": link},
    )


def sub_store_product(request, slug, product_pk):
    store_row, link = _open_store(slug)
    product = catalog_selectors.product_on_shelf(pk=product_pk)
    if product is None:
        raise Http404
    price = (
        services.sub_store_unit_price(
            distributor=store_row.distributor, product=product
        )
        or product.retail_price
    )
    buy_url = _with_ref(reverse("catalog:product-detail", args=[product.pk]), link)
    return render(
        request,
        "distribution/sub_store_product.html",
        {"store": store_row, "product": product, "price": price, "buy_url": buy_url},
    )


@require_http_methods(["POST"])
def appeal(request):
    """A frozen distributor appeals from the status page; the merchant decides in the console."""
    from .services.lifecycle import submit_appeal

    if not request.user.is_authenticated:
        return redirect(LOGIN_URL)
    viewer = selectors.distributor_for_user(request.user)
    if viewer is None:
        raise Http404
    try:
        submit_appeal(distributor=viewer, reason=request.POST.get("reason", ""))
        messages.success(request, _("申诉已提交，请等待商户处理"))
    except ValidationError as error:
        for message in _errors(error):
            messages.error(request, message)
    return redirect("distribution:agent-dashboard")
