"""Import products from an upstream Kamen (issue 17 §2, ADR 0019): its catalog read through the
``kamen_api`` supplier, each chosen product created here at the upstream's price plus the
merchant's markup, with a supplier channel to the upstream's product id.

The markup is a percentage or a fixed amount, the price rounded **up** to the fen, jiao or yuan,
so it is never below the upstream's price plus the markup. Importing again is safe: a product
already linked to that upstream product gets the new price and stock state, not a twin.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, InvalidOperation

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
    RechargeTargetRule,
    Supplier,
    SupplierAdapter,
    SupplierChannel,
)
from catalog.suppliers import SupplierError, client_for
from kamen import crypto
from kamen.money import FEN

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


# A docked top-up's account is checked by the upstream's own rule when it is forwarded; ours
# only keeps out a blank or spaced one (the merchant may set a stricter rule afterwards).
UPSTREAM_TARGET_REGEX = r"\S{1,120}"


def _markup_fields(markup: Markup) -> dict:
    """The rule stored on the channel, so the price follows the upstream's (upstream_sync)."""
    return {"markup_kind": markup.kind, "markup_value": markup.value, "markup_rounding": markup.rounding}


def _target_rule(product_type: str) -> dict:
    if product_type != ProductType.DIRECT_RECHARGE:
        return {}
    return {"recharge_target_rule": RechargeTargetRule.REGEX, "recharge_target_regex": UPSTREAM_TARGET_REGEX}


def import_upstream_products(*, supplier: Supplier, skus: list[str], markup: Markup, category, actor, request=None):
    """Create (or re-price) the chosen upstream products here, on the shelf. Returns the products.

    They are sourced upstream: a paid order buys the card keys (or forwards the top-up) through
    the product's supplier channels, the upstream's first (``send_top_up``)."""
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
    return dock_upstream_items(
        supplier=supplier,
        items=[offered[sku] for sku in wanted],
        markup=markup,
        category=category,
        actor=actor,
        request=request,
    )


def dock_upstream_items(*, supplier: Supplier, items: list, markup: Markup, category, actor, request=None):
    """The products for upstream catalog items already read (``UpstreamProduct``): created on
    the shelf, sourced upstream, or re-priced when a channel to the same item exists. Returns
    them. One transaction; no network."""
    products = []
    with transaction.atomic():
        for item in items:
            sku = item.sku
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
                    is_on_shelf=True,
                    recharge_target_label=_("充值账号") if item.requires_recharge_target else "",
                    **_target_rule(product_type),
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
            # Sourced upstream; the shop shows the upstream's stock like ours (upstream_sync keeps it).
            Product.objects.filter(pk=product.pk).update(
                is_sourced_upstream=True, upstream_stock=item.stock if item.in_stock or item.stock is None else 0
            )
            product.is_sourced_upstream = True
            products.append(product)
    return products


def store_upstream_card_keys(*, attempt, result) -> list[CardKey]:
    """The card keys an upstream Kamen delivered for ``attempt`` (a successful try of the
    product's supplier channels for our order ``attempt.reference``), stored encrypted in our
    vault as sold to that order before anyone sees them.

    Called by the supplier pipeline in the transaction that records the success, so the keys
    and the success commit together (one success per order, a database constraint). The
    order's cost of goods is the upstream's charged price: the keys' batch costs add up to it
    to the fen (the last key carries the remainder of an uneven split)."""
    product = attempt.product
    quantity = attempt.quantity
    total = result.cost if result.cost is not None else attempt.channel.cost * quantity
    total = Decimal(total).quantize(FEN)
    unit = (total / quantity).quantize(FEN, rounding=ROUND_DOWN)
    remainder = total - unit * quantity
    # Two batches when the price does not split evenly: n − 1 keys at the unit, one carrying the rest.
    shares = [(quantity, unit)] if not remainder else [(quantity - 1, unit), (1, unit + remainder)]
    now = timezone.now()
    goods = list(result.goods[:quantity])
    keys = []
    for count, unit_cost in shares:
        if count <= 0:
            continue
        batch = CardKeyBatch.objects.create(
            product=product,
            supplier=attempt.supplier,
            unit_cost=unit_cost,
            key_count=count,
            note=f"upstream order {result.supplier_order_no or attempt.out_order_no}"[:200],
        )
        for card_no, secret in goods[:count]:
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
                        f"upstream:{attempt.supplier_id}:{attempt.out_order_no}\x00{card_no}\x00{secret}"
                    ),
                    status=CardKeyStatus.SOLD,
                    sold_at=now,
                    sold_to=attempt.reference,
                )
            )
        goods = goods[count:]
    return CardKey.objects.bulk_create(keys)


__all__ = [
    "Markup",
    "apply_markup",
    "dock_upstream_items",
    "import_upstream_products",
    "parse_markup",
    "store_upstream_card_keys",
    "upstream_catalog",
]
