"""Grade prices, sub-store prices and the merchant's network settings.

A distributor's cost for a product (拿货价): the grade's per-product fixed cost if the merchant
set one, else the retail price times the grade's wholesale discount; then the best volume tier
for the quantity (a product-specific tier before an all-products one) multiplies it further.
Rounded half-up to the fen (a price a person sees), never below the merchant's own cost price.

A sub-store price lies between that cost (for one unit) and the product's maximum resale price
(its retail price when none is set). Their profit is the difference (差价). While the store is
open it is their price on every one of their links, not only the store's own (ADR 0012).
"""

from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify
from django.utils.translation import gettext as _

from kamen.audit import record_audit
from kamen.money import FEN, InvalidAmount, parse_amount
from kamen.parsing import parse_integer

from ..models import (
    BASIS_POINTS,
    MAX_COMMISSION_DEPTH,
    Channel,
    DistributionSettings,
    Distributor,
    DistributorStatus,
    GradeProductPrice,
    GradeVolumeTier,
    ReferralLink,
    SubStore,
    SubStorePrice,
)

RESERVED_SLUGS = {
    "admin",
    "agent",
    "api",
    "static",
    "media",
    "console",
    "products",
    "s",
    "r",
}


def _fen(value) -> Decimal:
    return Decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


def cost_price_for(*, distributor: Distributor, product, quantity: int = 1) -> Decimal:
    """What ``distributor`` pays per unit of ``product`` when buying ``quantity`` (their cost)."""
    grade_id = distributor.grade_id
    override = (
        GradeProductPrice.objects.filter(grade_id=grade_id, product_id=product.pk)
        .values_list("unit_cost", flat=True)
        .first()
    )
    if override is not None:
        unit = Decimal(override)
    else:
        unit = (
            product.retail_price
            * Decimal(distributor.grade.wholesale_discount_bp)
            / BASIS_POINTS
        )
    tier = (
        GradeVolumeTier.objects.filter(
            grade_id=grade_id, min_quantity__lte=max(int(quantity), 1)
        )
        .filter(Q(product_id=product.pk) | Q(product__isnull=True))
        .order_by(
            "product_id", "-min_quantity"
        )  # NULLs last on PostgreSQL: product tiers first
        .values_list("rate_bp", flat=True)
        .first()
    )
    if tier is not None:
        unit = unit * Decimal(tier) / BASIS_POINTS
    return max(_fen(unit), product.cost_price)


def resale_ceiling_for(product) -> Decimal:
    return (
        product.max_resale_price
        if product.max_resale_price is not None
        else product.retail_price
    )


def get_settings() -> DistributionSettings:
    settings_row, _created = DistributionSettings.objects.get_or_create(pk=1)
    return settings_row


def commission_depth() -> int:
    """The depth in force, never more than the legal 3 whatever the row says."""
    return min(max(get_settings().commission_depth, 1), MAX_COMMISSION_DEPTH)


@transaction.atomic
def set_commission_depth(*, depth, actor, request=None) -> DistributionSettings:
    if actor is None or not actor.has_perm("distribution.change_distributionsettings"):
        raise PermissionDenied(_("您没有执行此操作的权限"))
    try:
        depth = parse_integer(depth)
    except (TypeError, ValueError):
        raise ValidationError({"commission_depth": [_("佣金层级必须是整数")]}) from None
    if not 1 <= depth <= MAX_COMMISSION_DEPTH:
        raise ValidationError(
            {"commission_depth": [_("佣金层级只能是 1–3 级（法律上限为 3 级）")]}
        )
    row = DistributionSettings.objects.select_for_update().get_or_create(pk=1)[0]
    old = row.commission_depth
    row.commission_depth = depth
    row.save(update_fields=["commission_depth", "updated_at"])
    record_audit(
        actor=actor,
        action="distribution.settings.depth",
        target=row,
        request=request,
        changes={"commission_depth": [old, depth]},
    )
    return row


def _require_sub_store_owner(distributor: Distributor) -> None:
    if distributor.status != DistributorStatus.ACTIVE:
        raise PermissionDenied(_("账号当前状态不能经营分站"))
    if not distributor.grade.may_open_sub_store:
        raise PermissionDenied(
            _("您的等级“%(grade)s”不能开设分站") % {"grade": distributor.grade.name}
        )


def _clean_slug(raw) -> str:
    slug = slugify(str(raw or "").strip())[:32]
    if not slug or len(slug) < 3:
        raise ValidationError(
            {"slug": [_("分站地址至少 3 个字符，只能用小写字母、数字和连字符")]}
        )
    if slug in RESERVED_SLUGS:
        raise ValidationError(
            {"slug": [_("分站地址“%(slug)s”为系统保留") % {"slug": slug}]}
        )
    return slug


@transaction.atomic
def save_sub_store(
    *, distributor: Distributor, name, slug, notice: str = "", is_open: bool = True
) -> SubStore:
    """Open or update the distributor's sub-store; the first save also creates its share link."""
    distributor = Distributor.objects.select_related("grade").get(pk=distributor.pk)
    _require_sub_store_owner(distributor)
    errors: dict[str, list[str]] = {}
    name = str(name or "").strip()
    if not name:
        errors["name"] = [_("请填写分站名称")]
    elif len(name) > 40:
        errors["name"] = [_("分站名称最多 40 个字")]
    notice = str(notice or "").strip()
    if len(notice) > 300:
        errors["notice"] = [_("公告最多 300 个字")]
    try:
        slug = _clean_slug(slug)
    except ValidationError as error:
        errors.update(error.message_dict)
        slug = ""
    if (
        slug
        and SubStore.objects.filter(slug=slug).exclude(distributor=distributor).exists()
    ):
        errors["slug"] = [_("分站地址“%(slug)s”已被使用") % {"slug": slug}]
    if errors:
        raise ValidationError(errors)
    store, _created = SubStore.objects.update_or_create(
        distributor=distributor,
        defaults={
            "name": name,
            "slug": slug,
            "notice": notice,
            "is_open": bool(is_open),
        },
    )
    if not ReferralLink.objects.filter(sub_store=store).exists():
        from .referrals import new_link_code

        ReferralLink.objects.create(
            distributor=distributor,
            sub_store=store,
            code=new_link_code(),
            channel=Channel.OTHER,
            label=_("分站"),
        )
    return store


@transaction.atomic
def set_sub_store_price(*, distributor: Distributor, product, price) -> SubStorePrice:
    """Set the sub-store's price for a product, between the distributor's cost and the
    merchant's maximum. Out of bounds: a clear message and nothing saved."""
    distributor = Distributor.objects.select_related("grade").get(pk=distributor.pk)
    _require_sub_store_owner(distributor)
    store = SubStore.objects.filter(distributor=distributor).first()
    if store is None:
        raise ValidationError({"price": [_("请先开设分站")]})
    try:
        amount = parse_amount(price)
    except InvalidAmount:
        raise ValidationError(
            {
                "price": [
                    _("“%(raw)s”不是有效金额（最多两位小数，大于 0）") % {"raw": price}
                ]
            }
        ) from None
    floor = cost_price_for(distributor=distributor, product=product, quantity=1)
    ceiling = resale_ceiling_for(product)
    if amount < floor:
        if not distributor.grade.may_see_floor_price:
            raise ValidationError({"price": [_("售价低于商户允许的最低价")]})
        raise ValidationError(
            {"price": [_("售价不能低于您的拿货价 ¥%(floor)s") % {"floor": floor}]}
        )
    if amount > ceiling:
        raise ValidationError(
            {"price": [_("售价不能高于商户限价 ¥%(ceiling)s") % {"ceiling": ceiling}]}
        )
    row, _created = SubStorePrice.objects.update_or_create(
        sub_store=store,
        product=product,
        defaults={"price": amount, "floor_price": floor, "ceiling_price": ceiling},
    )
    return row


def sub_store_unit_price(*, distributor: Distributor, product) -> Decimal | None:
    """Today's sub-store price of a product, kept within today's bounds (a price set before the
    merchant lowered the maximum or the grade changed is pulled back inside), or None."""
    store = getattr(distributor, "sub_store", None)
    if store is None or not store.is_open:
        return None
    row = SubStorePrice.objects.filter(sub_store=store, product_id=product.pk).first()
    if row is None:
        return None
    floor = cost_price_for(distributor=distributor, product=product, quantity=1)
    ceiling = resale_ceiling_for(product)
    return min(max(row.price, floor), ceiling)
