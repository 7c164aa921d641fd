"""Checkout: turn a buyer's form into an order with its price, attribution and stock held.

Nothing the client sends is trusted but the choices it makes (product, quantity, contact,
fields): the price comes from the catalog (or the distributor's sub-store price through the
distribution hook) and is snapshotted on the order with the attribution. Card keys are
reserved for the payment window so that a paid order finds its keys waiting.
"""

import base64
import functools
import hashlib
import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Product, ProductType
from catalog.services import InsufficientStock, reserve_card_keys, reserve_card_keys_along_with
from catalog.validation import (
    MOBILE_RE,
    clean_text,
    validate_buyer_fields,
    validate_recharge_target,
)
from kamen.db import insert_instance, insert_select_sql, insert_select_values, inserted
from kamen.parsing import parse_integer
from orders.models import ContactKind, Order, OrderStatus
from riskcontrol.services.assessment import REVIEW
from riskcontrol.services.cases import open_review_case

from .catalog_bridge import is_reusable_key_product
from .query_password import hash_query_password

__all__ = ["CHANNELS", "new_checkout_token", "place_order", "unit_price_for", "validate_contact"]

CHANNELS = ("wechat", "douyin", "xiaohongshu", "other")
QUERY_PASSWORD_MIN, QUERY_PASSWORD_MAX = 4, 64
# Orders in these states still count against a buyer's purchase limit.
_LIMIT_EXCLUDED = (OrderStatus.EXPIRED, OrderStatus.REFUNDED)


def new_checkout_token() -> str:
    """The one-time token a checkout form carries: a double submit returns the same order."""
    return secrets.token_urlsafe(24)


def _bound_checkout_token(token: str | None, owner: str) -> str | None:
    """The token as stored on the order: bound to the browser that posted it (``owner``), so
    the same token from another browser is another key and never finds this order. Bound by
    hashing into the token's own column, so a repeat is still one indexed look-up and the
    checkout statement is unchanged. Without an owner (a service caller) the token as given."""
    if not token or not owner:
        return token or None
    digest = hashlib.blake2b(token.encode(), key=owner.encode()[:64], digest_size=24).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _new_order_no() -> str:
    """K + local time to the second + 9 random digits (22 characters): at a hundred orders a
    second two numbers collide about once in 200,000 seconds, and checkout draws again then."""
    return "K" + timezone.localtime().strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**9):09d}"


def validate_contact(raw) -> tuple[str, str]:
    """(contact, kind) for an e-mail address or a mainland mobile number, else ValidationError."""
    value = clean_text(raw)
    if not value:
        raise ValidationError(_("请填写联系方式（邮箱或手机号）"), code="required")
    limit = Order._meta.get_field("contact").max_length
    if len(value) > limit:
        raise ValidationError(_("联系方式过长（最多 %(limit)s 个字符）") % {"limit": limit}, code="max_length")
    if "@" in value:
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError(_("请输入正确的邮箱地址"), code="invalid") from None
        return value.lower(), ContactKind.EMAIL
    if MOBILE_RE.fullmatch(value):
        return value, ContactKind.MOBILE
    raise ValidationError(_("联系方式须为邮箱或 11 位中国大陆手机号"), code="invalid")


def unit_price_for(*, product: Product, distributor_id: int | None, quantity: int, distributor=None) -> Decimal:
    """The server-side unit price: the sub-store price through the distribution hook when the
    order is attributed, else the retail price."""
    from distribution.services import price_for_order

    price = price_for_order(product=product, distributor_id=distributor_id, quantity=quantity, distributor=distributor)
    return Decimal(price) if price is not None else product.retail_price


def _parse_quantity(raw, product: Product) -> int:
    try:
        quantity = parse_integer(raw)
    except (TypeError, ValueError):
        raise ValidationError(_("购买数量必须是整数"), code="invalid") from None
    low, high = product.min_quantity_per_order, product.max_quantity_per_order
    if quantity < low or quantity > high:
        raise ValidationError(
            _("购买数量须在 %(low)s–%(high)s 件之间") % {"low": low, "high": high}, code="out_of_range"
        )
    return quantity


def _attribution(referral: dict | None) -> tuple[int | None, dict, str, object]:
    """(distributor id, snapshot, channel, the distributor as loaded for pricing)."""
    if not referral or not referral.get("code"):
        return None, {}, "", None
    from distribution.services import attribution_for_referral

    channel = referral.get("channel") if referral.get("channel") in CHANNELS else "other"
    found = attribution_for_referral(code=str(referral["code"])[:64])
    if not found:
        return None, {"referral_code": str(referral["code"])[:64], "matched": False}, channel, None
    snapshot = {
        "referral_code": str(referral["code"])[:64],
        "matched": True,
        "chain": list(found.get("chain") or []),
        "link": found.get("link"),
        "sub_store": found.get("sub_store"),
        # What the commission split needs, frozen now so later moves and grade changes in the
        # tree never change what this order pays (docs/adr/0007).
        "distributor_id": found.get("distributor_id"),
        "grade": found.get("grade"),
        "chain_grades": list(found.get("chain_grades") or []),
        "depth": found.get("depth"),
    }
    return found.get("distributor_id"), snapshot, channel, found.get("seller")


def _buyer_distributor(user):
    """The distributor behind a logged-in buyer, or None for guests and other users."""
    if not getattr(user, "is_authenticated", False):
        return None
    from distribution.selectors import distributor_for_user

    return distributor_for_user(user)


def _lock_buyer(product: Product, contact: str) -> None:
    """Serialise checkouts of one buyer for one product so a purchase limit cannot be raced."""
    if not product.purchase_limit_per_buyer:
        return
    digest = hashlib.blake2b(f"{product.pk}:{contact}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def _reserve_stock(order: Order, product: Product, *, until) -> None:
    """Hold card keys for the payment window (``until``; None once paid): the product's own, or
    each card-key part of a bundle. Keys bought from an upstream once paid are not held here."""
    if product.product_type == ProductType.CARD_KEY:
        if not product.is_sourced_upstream and not is_reusable_key_product(product):
            reserve_card_keys(product=product, quantity=order.quantity, reference=order.order_no, until=until)
        return
    if product.product_type == ProductType.BUNDLE:
        for item in product.bundle_items.select_related("component").order_by("component_id"):
            component = item.component
            if (
                component.product_type == ProductType.CARD_KEY
                and not component.is_sourced_upstream
                and not is_reusable_key_product(component)
            ):
                reserve_card_keys(
                    product=component, quantity=item.quantity * order.quantity, reference=order.order_no, until=until
                )


def _create_order_holding_stock(fields: dict) -> Order:
    """The order under a fresh number with its stock held: one statement in the common case,
    else one transaction with the per-buyer limit and the full reservation."""
    product, contact, quantity = fields["product"], fields["contact"], fields["quantity"]
    if _can_place_in_one_statement(fields):
        order = _place_in_one_statement(Order(order_no=_new_order_no(), **fields))
        if order is not None:
            return order
        # Too few keys: the full path below frees lapsed reservations first, or says so.
    with transaction.atomic():
        _lock_buyer(product, contact)
        if product.purchase_limit_per_buyer:
            bought = (
                Order.objects.filter(product=product, contact=contact)
                .exclude(status__in=_LIMIT_EXCLUDED)
                .aggregate(total=Sum("quantity"))["total"]
                or 0
            )
            if bought + quantity > product.purchase_limit_per_buyer:
                raise ValidationError(
                    {
                        "quantity": [
                            _("每位买家限购 %(limit)s 件，您已购买 %(bought)s 件")
                            % {"limit": product.purchase_limit_per_buyer, "bought": bought}
                        ]
                    }
                )
        order = Order(order_no=_new_order_no(), **fields)
        insert_instance(order)  # the ORM's insert, without building it
        try:
            _reserve_stock(order, product, until=order.expires_at)
        except InsufficientStock:
            raise ValidationError({"quantity": [_("库存不足，请减少购买数量或稍后再试")]}) from None
        if order.attribution.get("risk") == REVIEW:
            # Held for risk staff: the case opens with the order, in its transaction.
            open_review_case(order=order)
        if order.attribution.get("matched"):
            from distribution.services import count_referral_order

            # Last, so the link's row is locked only for the commit: a hot link's checkouts
            # queue on it for no longer than that.
            count_referral_order(code=order.attribution["link"])
    return order


def _can_place_in_one_statement(fields: dict) -> bool:
    """The common checkout (one card-key product; no purchase limit to serialise;
    no review case to open with the order) needs no transaction of its own: one statement."""
    product = fields["product"]
    return (
        product.product_type == ProductType.CARD_KEY
        and not product.is_sourced_upstream
        and not product.purchase_limit_per_buyer
        and fields["attribution"].get("risk") != REVIEW
        and not is_reusable_key_product(product)
    )


def _place_in_one_statement(order: Order) -> Order | None:
    """Insert the order when there are enough keys, reserve them for it and count the
    referral link's order: one statement (catalog's reservation around the order's insert), so
    one round trip and no BEGIN / COMMIT of its own. None when there were too few keys
    (nothing written)."""
    from distribution.services import count_referral_order_cte

    parameters = insert_select_values(order)
    parameters["link"] = order.attribution.get("link") if order.attribution.get("matched") else None
    order_id = reserve_card_keys_along_with(
        product=order.product,
        quantity=order.quantity,
        reference=order.order_no,
        until=order.expires_at,
        write=_insert_when_in_stock(),
        also=(count_referral_order_cte(only_with="written"),),
        params=parameters,
    )
    if order_id is None:
        return None
    return inserted(order, order_id)


@functools.cache
def _insert_when_in_stock() -> str:
    insert, _fields = insert_select_sql(Order)
    return insert + " FROM {stock} WHERE stock.found >= %(quantity)s"


def place_order(
    *,
    product: Product,
    quantity,
    contact,
    query_password,
    buyer_fields: dict | None = None,
    recharge_target="",
    checkout_token: str | None = None,
    checkout_owner: str = "",
    referral: dict | None = None,
    buyer_ip: str | None = None,
    gateway: str = "sandbox",
    buyer_user=None,
    wholesale_unit_price: Decimal | None = None,
    docking_site_id: int | None = None,
    docking_order_limit: int | None = None,
) -> Order:
    """Validate, price, attribute, reserve and create the order (pending payment).

    ``buyer_user`` is the logged-in user, if any: a distributor buying for themselves
    (wholesale / self purchase) is recorded as ``attribution["buyer_distributor_id"]`` so the
    commission split can apply the merchant's self-purchase rule.

    ``wholesale_unit_price`` and ``docking_site_id``: an order of a docking site through the
    open API (``orders.api``), at the price its caller computed on the server (the site's
    distributor's cost); recorded as ``attribution["docking_site_id"]``; judged by the docking
    risk policy (per-site velocity up to ``docking_order_limit``, ADR 0019), not the buyer rules.

    Bad input raises ValidationError with one message per field and changes nothing. The same
    ``checkout_token`` twice returns the first order — only to the same ``checkout_owner`` (the
    view passes the browser's identity): from another browser the token places a new order.
    """
    checkout_token = _bound_checkout_token(checkout_token, checkout_owner)
    if checkout_token:
        existing = Order.objects.filter(checkout_token=checkout_token).first()
        if existing is not None:
            return existing
    errors: dict[str, list[str]] = {}

    def check(name, func):
        try:
            return func()
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                errors.update(error.message_dict)
            else:
                errors.setdefault(name, []).extend(error.messages)
            return None

    if not product.is_on_shelf:
        raise ValidationError({"product": [_("该商品已下架")]})
    quantity = check("quantity", lambda: _parse_quantity(quantity, product))
    contact_kind = check("contact", lambda: validate_contact(contact))
    password = str(query_password or "")
    if not QUERY_PASSWORD_MIN <= len(password) <= QUERY_PASSWORD_MAX:
        errors["query_password"] = [
            _("查单密码须为 %(low)s–%(high)s 个字符") % {"low": QUERY_PASSWORD_MIN, "high": QUERY_PASSWORD_MAX}
        ]
    fields = check("buyer_fields", lambda: validate_buyer_fields(product=product, data=buyer_fields or {})) or {}
    target = ""
    if product.product_type == ProductType.DIRECT_RECHARGE or product.recharge_target_rule:
        target = check("recharge_target", lambda: validate_recharge_target(product=product, target=recharge_target))
    if errors:
        raise ValidationError(errors)
    contact, kind = contact_kind

    distributor_id, attribution, channel, seller = _attribution(referral)
    buyer_distributor = _buyer_distributor(buyer_user)
    if buyer_distributor is not None:
        attribution["buyer_distributor_id"] = buyer_distributor.pk
        if buyer_distributor.first_order_reached_at is None and buyer_distributor.grade.first_order_amount > 0:
            # Its payment counts towards the buyer's first-order threshold (docs/adr/0023).
            attribution["first_order_pending"] = True
    if docking_site_id is not None:
        attribution["docking_site_id"] = docking_site_id
    if wholesale_unit_price is not None:
        unit_price = Decimal(wholesale_unit_price)
    else:
        unit_price = unit_price_for(
            product=product, distributor_id=distributor_id, quantity=quantity, distributor=seller
        )
    if attribution.get("sub_store") and seller is not None:
        # The seller's cost now: their price difference (差价) is paid from it at delivery.
        from distribution.services import cost_price_for

        attribution["seller_unit_cost"] = str(cost_price_for(distributor=seller, product=product, quantity=quantity))
    total = (unit_price * quantity).quantize(Decimal("0.01"))

    from riskcontrol.services.assessment import BLOCK, assess_checkout_in_full

    assessment = assess_checkout_in_full(
        product=product,
        quantity=quantity,
        contact=contact,
        buyer_ip=buyer_ip,
        amount=total,
        distributor_id=distributor_id,
        attribution=attribution,
        checkout_token=checkout_token or "",
        docking_site_id=docking_site_id,
        docking_order_limit=docking_order_limit,
    )
    if assessment.verdict == BLOCK:
        raise ValidationError({"__all__": [assessment.buyer_message or _("该订单未通过风控检查，请联系客服")]})
    if assessment.verdict == REVIEW:
        attribution["risk"] = REVIEW

    password_hash = hash_query_password(password)
    now = timezone.now()
    fields_of_order = {
        "product": product,
        "product_name": product.name,
        "product_type": product.product_type,
        "quantity": quantity,
        "unit_price": unit_price,
        "total_amount": total,
        "cost_amount": (product.cost_price * quantity).quantize(Decimal("0.01")),
        "contact": contact,
        "contact_kind": kind,
        "query_password_hash": password_hash,
        "buyer_fields": fields,
        "recharge_target": target or "",
        "distributor_id": distributor_id,
        "attribution": attribution,
        "channel": channel,
        "checkout_token": checkout_token or None,
        "payment_gateway": gateway,
        "buyer_ip": buyer_ip,
        "expires_at": now + timedelta(minutes=settings.ORDER_PAYMENT_WINDOW_MINUTES),
    }
    for attempt in range(3):
        try:
            return _create_order_holding_stock(fields_of_order)
        except IntegrityError as error:
            if checkout_token:
                existing = Order.objects.filter(checkout_token=checkout_token).first()
                if existing is not None:
                    return existing
            if "order_no" not in str(error) or attempt == 2:
                raise
            # two checkouts drew the same order number: draw again
