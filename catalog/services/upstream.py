"""Import products from an upstream Kamen (issue 17 §2, ADR 0019): its catalog read through the
``kamen_api`` supplier, each chosen product created here at the upstream's price plus the
merchant's markup, with a supplier channel to the upstream's product id.

The markup is a percentage or a fixed amount, the price rounded **up** to the fen, jiao or yuan,
so it is never below the upstream's price plus the markup. Importing again is safe: a product
already linked to that upstream product gets the new price and stock state, not a twin.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import (
    CardKey,
    CardKeyBatch,
    CardKeyStatus,
    Product,
    ProductType,
    Supplier,
    SupplierAdapter,
    SupplierChannel,
)
from catalog.suppliers import OrderStatus, SupplierError, client_for
from kamen import crypto

from .products import create_product, update_product

MARKUP_KINDS = ("percent", "fixed")
ROUNDING_UNITS = {"fen": Decimal("0.01"), "jiao": Decimal("0.1"), "yuan": Decimal("1")}
MAX_PERCENT = Decimal("1000")
MAX_FIXED = Decimal("100000")


@dataclass(frozen=True)
class Markup:
    kind: str  # "percent" or "fixed"
    value: Decimal
    rounding: str  # "fen", "jiao" or "yuan"


def parse_markup(*, kind: str, value, rounding: str) -> Markup:
    """The merchant's markup from the form; bad input raises ValidationError per field."""
    errors = {}
    if kind not in MARKUP_KINDS:
        errors["markup_kind"] = [_("加价方式只能是按比例或固定金额")]
    if rounding not in ROUNDING_UNITS:
        errors["rounding"] = [_("取整方式只能是分、角或元")]
    try:
        amount = Decimal(str(value).strip())
        if not amount.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["markup_value"] = [_("加价必须是数字")]
        amount = None
    if amount is not None:
        bound = MAX_PERCENT if kind == "percent" else MAX_FIXED
        if amount < 0:
            errors["markup_value"] = [_("加价不能为负数")]
        elif amount > bound:
            errors["markup_value"] = [_("加价不能超过 %(bound)s") % {"bound": bound}]
        elif amount != amount.quantize(Decimal("0.01")):
            errors["markup_value"] = [_("加价最多两位小数")]
    if errors:
        raise ValidationError(errors)
    return Markup(kind=kind, value=amount, rounding=rounding)


def apply_markup(cost: Decimal, markup: Markup) -> Decimal:
    """The selling price: ``cost`` plus the markup, rounded up to the unit, to the fen."""
    cost = Decimal(cost)
    if markup.kind == "percent":
        raw = cost * (1 + markup.value / 100)
    else:
        raw = cost + markup.value
    unit = ROUNDING_UNITS[markup.rounding]
    return ((raw / unit).to_integral_value(rounding=ROUND_CEILING) * unit).quantize(Decimal("0.01"))


def upstream_catalog(*, supplier: Supplier) -> list:
    """The upstream's products at our price (``UpstreamProduct``); SupplierError when it fails."""
    if supplier.adapter != SupplierAdapter.KAMEN_API:
        raise ValidationError(_("只能从 Kamen 开放接口货源导入商品"))
    return client_for(supplier).list_products()


def _product_type(upstream_type: str) -> str:
    if upstream_type == ProductType.DIRECT_RECHARGE:
        return ProductType.DIRECT_RECHARGE
    if upstream_type == ProductType.CARD_KEY:
        return ProductType.CARD_KEY
    raise ValidationError(_("上游商品类型“%(type)s”暂不支持导入") % {"type": upstream_type})


def _markup_fields(markup: Markup) -> dict:
    """The rule stored on the channel, so the price follows the upstream's (upstream_sync)."""
    return {"markup_kind": markup.kind, "markup_value": markup.value, "markup_rounding": markup.rounding}


def import_upstream_products(*, supplier: Supplier, skus: list[str], markup: Markup, category, actor, request=None):
    """Create (or re-price) the chosen upstream products here. Returns the products.

    Top-up products go on the shelf (the supplier pipeline delivers them). Card-key products are
    created off the shelf: buying their keys from the upstream at delivery is not wired yet
    (ADR 0019, open)."""
    wanted = [str(sku) for sku in skus]
    if not wanted:
        raise ValidationError({"skus": [_("请至少选择一个上游商品")]})
    try:
        offered = {item.sku: item for item in upstream_catalog(supplier=supplier)}
    except SupplierError as error:
        raise ValidationError(_("读取上游商品失败：%(error)s") % {"error": error}) from None
    missing = [sku for sku in wanted if sku not in offered]
    if missing:
        raise ValidationError({"skus": [_("上游没有这些商品：%(skus)s") % {"skus": "、".join(missing)}]})
    products = []
    with transaction.atomic():
        for sku in wanted:
            item = offered[sku]
            product_type = _product_type(item.product_type)
            price = apply_markup(item.price, markup)
            channel = (
                SupplierChannel.objects.select_related("product")
                .filter(supplier=supplier, supplier_sku=sku)
                .order_by("id")
                .first()
            )
            if channel is not None:
                product = update_product(
                    product=channel.product, actor=actor, request=request, retail_price=price, cost_price=item.price
                )
                SupplierChannel.objects.filter(pk=channel.pk).update(
                    cost=item.price, is_in_stock=item.in_stock, upstream_stock=item.stock, **_markup_fields(markup)
                )
            else:
                product = create_product(
                    actor=actor,
                    request=request,
                    category=category,
                    name=item.name or f"{supplier.name} #{sku}",
                    product_type=product_type,
                    retail_price=price,
                    cost_price=item.price,
                    is_on_shelf=product_type == ProductType.DIRECT_RECHARGE,
                    recharge_target_label=_("充值账号") if item.requires_recharge_target else "",
                )
                SupplierChannel.objects.create(
                    product=product,
                    supplier=supplier,
                    supplier_sku=sku,
                    cost=item.price,
                    is_in_stock=item.in_stock,
                    upstream_stock=item.stock,
                    **_markup_fields(markup),
                )
            # The shop shows the upstream's stock like ours (catalog.services.upstream_sync keeps it).
            Product.objects.filter(pk=product.pk).update(
                upstream_stock=item.stock if item.in_stock or item.stock is None else 0
            )
            products.append(product)
    return products


class UpstreamRefused(Exception):
    """The upstream refused or failed the order for good (its message says why)."""


def upstream_key_channel(product: Product) -> SupplierChannel | None:
    """The active channel to an upstream Kamen of a card-key product, if it is sourced so."""
    if product.product_type != ProductType.CARD_KEY:
        return None
    return (
        SupplierChannel.objects.select_related("supplier")
        .filter(product=product, is_active=True, supplier__adapter=SupplierAdapter.KAMEN_API, supplier__is_active=True)
        .order_by("priority", "id")
        .first()
    )


def buy_upstream_card_keys(*, product: Product, reference: str, quantity: int, transport=None) -> list[CardKey] | None:
    """The card keys of our order ``reference`` bought from the upstream Kamen: placed under our
    order number (the same number again is the same upstream order, so a retry never buys
    twice), read once the upstream delivered, and stored encrypted in our vault as sold to
    ``reference`` before anyone sees them. None while the upstream has not delivered yet (call
    again: the upstream order is found, not placed anew); UpstreamRefused when it refused.
    Safe to call twice: keys already stored for ``reference`` are returned."""
    stored = list(CardKey.objects.filter(product=product, sold_to=reference, status=CardKeyStatus.SOLD).order_by("id"))
    if len(stored) >= quantity:
        return stored[:quantity]
    channel = upstream_key_channel(product)
    if channel is None:
        raise UpstreamRefused("no active upstream channel")
    client = client_for(channel.supplier, transport=transport)
    result = client.place_order(sku=channel.supplier_sku, target="", quantity=quantity, out_order_no=reference)
    if result.status == OrderStatus.PENDING or (
        result.status == OrderStatus.SUCCEEDED and len(result.goods) < quantity
    ):
        # Not delivered yet, or an answer to a repeated placement (no goods in it): the
        # upstream's order page has the goods once it is completed.
        result = client.query_order(out_order_no=reference)
    if result.status == OrderStatus.PENDING:
        return None
    if result.status != OrderStatus.SUCCEEDED:
        raise UpstreamRefused(result.message or str(result.status))
    if len(result.goods) < quantity:
        raise UpstreamRefused(f"upstream delivered {len(result.goods)} of {quantity} keys")
    now = timezone.now()
    with transaction.atomic():
        # Under the product row lock, so two workers storing the same order store it once.
        Product.objects.select_for_update().only("id").get(pk=product.pk)
        stored = list(
            CardKey.objects.filter(product=product, sold_to=reference, status=CardKeyStatus.SOLD).order_by("id")
        )
        if len(stored) >= quantity:
            return stored[:quantity]
        unit_cost = (result.cost / quantity).quantize(Decimal("0.01")) if result.cost is not None else None
        batch = CardKeyBatch.objects.create(
            product=product,
            supplier=channel.supplier,
            unit_cost=unit_cost,
            key_count=quantity,
            note=f"upstream order {result.supplier_order_no}"[:200],
        )
        keys = []
        for card_no, secret in result.goods[:quantity]:
            key_id, blob = crypto.encrypt(secret)
            keys.append(
                CardKey(
                    product=product,
                    batch=batch,
                    card_no=card_no[:128],
                    secret_ciphertext=blob,
                    key_id=key_id,
                    # The upstream order in the identity: a key sold twice upstream is two rows.
                    fingerprint=crypto.blind_index(
                        f"upstream:{channel.supplier_id}:{result.supplier_order_no}\x00{card_no}\x00{secret}"
                    ),
                    status=CardKeyStatus.SOLD,
                    sold_at=now,
                    sold_to=reference,
                )
            )
        return CardKey.objects.bulk_create(keys)


__all__ = [
    "Markup",
    "UpstreamRefused",
    "apply_markup",
    "buy_upstream_card_keys",
    "import_upstream_products",
    "parse_markup",
    "upstream_catalog",
    "upstream_key_channel",
]
