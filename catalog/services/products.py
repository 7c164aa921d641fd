"""Catalog writes: products, prices, shelf status, categories, custom fields, bundles, images.

Every service validates everything before it writes, runs in one transaction, and records an
audit row (before → after) for the changes a merchant would later ask about: prices, shelf
status, stock settings. Bad input raises a ValidationError keyed by field and saves nothing.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from catalog.images import process_product_image
from catalog.models import (
    BundleItem,
    Category,
    CustomFieldType,
    DeliveryOrder,
    Product,
    ProductCustomField,
    ProductImage,
    ProductType,
    RechargeTargetRule,
)
from catalog.models.products import RedemptionMode
from catalog.validation import compile_user_regex, sanitize_description
from kamen.audit import diff_fields, record_audit
from kamen.parsing import is_ascii_integer, parse_decimal, parse_integer
from kamen.setting_checks import setting_change

__all__ = [
    "PRICE_FIELDS",
    "PRODUCT_FIELDS",
    "add_bundle_item",
    "add_product_image",
    "create_category",
    "create_product",
    "move_category",
    "put_on_shelf",
    "remove_bundle_item",
    "remove_custom_field",
    "remove_product_image",
    "save_custom_field",
    "set_product_price",
    "take_off_shelf",
    "update_category",
    "update_product",
    "validate_product_fields",
]

PRICE_FIELDS = ("retail_price", "cost_price", "face_value", "max_resale_price")
SHELF_FIELDS = ("is_on_shelf", "off_shelf_reason")
# Settings that change how stock is sold or watched: audited with their own action.
STOCK_FIELDS = (
    "min_quantity_per_order",
    "max_quantity_per_order",
    "purchase_limit_per_buyer",
    "delivery_order",
    "low_stock_threshold",
    "supplier_cost_ceiling",
    "redemption_mode",
)
OTHER_FIELDS = (
    "category",
    "name",
    "product_type",
    "description",
    "recharge_target_rule",
    "recharge_target_regex",
    "recharge_target_label",
    "sort_order",
)
PRODUCT_FIELDS = OTHER_FIELDS + PRICE_FIELDS + SHELF_FIELDS + STOCK_FIELDS
# Amounts above this do not fit DecimalField(max_digits=14, decimal_places=2).
MAX_AMOUNT = Decimal("999999999999.99")


# --- helpers ----------------------------------------------------------------------------------
def _require_permission(actor, permission: str) -> None:
    """None is the system (demo loader, migrations); a person needs the permission."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(_("你没有执行此操作的权限（%(permission)s）") % {"permission": permission})


def _amount(raw, *, label: str, allow_zero: bool = False, optional: bool = False) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if optional:
            return None
        raise ValidationError(_("请填写%(label)s") % {"label": label})
    if isinstance(raw, float):
        raise ValidationError(_("%(label)s必须是精确金额（不能用浮点数）") % {"label": label})
    try:
        value = parse_decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValidationError(_("%(label)s“%(value)s”不是有效金额") % {"label": label, "value": raw}) from None
    if not value.is_finite():
        raise ValidationError(_("%(label)s“%(value)s”不是有效金额") % {"label": label, "value": raw})
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError(_("%(label)s最多两位小数（精确到分）") % {"label": label})
    if value < 0:
        raise ValidationError(_("%(label)s不能为负数") % {"label": label})
    if value == 0 and not allow_zero:
        raise ValidationError(_("%(label)s必须大于 0") % {"label": label})
    if value > MAX_AMOUNT:
        raise ValidationError(_("%(label)s过大") % {"label": label})
    return value.quantize(Decimal("0.01"))


def _whole_number(raw, *, label: str, minimum: int, optional: bool = False) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if optional:
            return None
        raise ValidationError(_("请填写%(label)s") % {"label": label})
    if isinstance(raw, bool):
        raise ValidationError(_("%(label)s必须是整数") % {"label": label})
    try:
        value = parse_integer(raw)
    except ValueError:
        raise ValidationError(_("%(label)s必须是整数") % {"label": label}) from None
    if value < minimum:
        raise ValidationError(_("%(label)s不能小于 %(minimum)s") % {"label": label, "minimum": minimum})
    if value > 2_147_483_647:
        raise ValidationError(_("%(label)s过大") % {"label": label})
    return value


def _text(raw, *, label: str, max_length: int, required: bool = False) -> str:
    value = "" if raw is None else str(raw).strip()
    if required and not value:
        raise ValidationError(_("请填写%(label)s") % {"label": label})
    if len(value) > max_length:
        raise ValidationError(_("%(label)s最多 %(max)s 个字符") % {"label": label, "max": max_length})
    return value


def _choice(raw, *, label: str, choices) -> str:
    value = "" if raw is None else str(raw)
    if value not in choices.values:
        known = "、".join(f"{choice.value}（{choice.label}）" for choice in choices if choice.value)
        raise ValidationError(
            _("未知的%(label)s“%(value)s”，可选：%(known)s") % {"label": label, "value": value, "known": known}
        )
    return value


def _category(raw) -> Category:
    if isinstance(raw, Category):
        return raw
    if raw in (None, ""):
        raise ValidationError(_("请选择分类"))
    category = Category.objects.filter(pk=raw).first() if is_ascii_integer(str(raw)) else None
    if category is None:
        raise ValidationError(_("分类“%(value)s”不存在") % {"value": raw})
    return category


def _label(field: str) -> str:
    return str(Product._meta.get_field(field).verbose_name)


# --- product validation -----------------------------------------------------------------------
def validate_product_fields(*, values: dict[str, Any], product: Product | None = None) -> dict[str, Any]:
    """The complete, cleaned field values of a product, or a ValidationError keyed by field.

    ``values`` is the whole intended state (the current values merged with the changes), so
    rules that tie fields together (max ≥ min, resale ≥ retail, per-type rules) see both sides."""
    unknown = sorted(set(values) - set(PRODUCT_FIELDS))
    if unknown:
        raise ValidationError(_("未知的商品字段：%(fields)s") % {"fields": ", ".join(unknown)})
    cleaned: dict[str, Any] = {}
    errors: dict[str, list] = {}

    def field(name, parse):
        try:
            cleaned[name] = parse(values.get(name))
        except ValidationError as error:
            errors.setdefault(name, []).extend(error.messages)

    field("name", lambda v: _text(v, label=_label("name"), max_length=120, required=True))
    field("category", _category)
    field(
        "product_type",
        lambda v: _choice(v, label=_label("product_type"), choices=ProductType),
    )
    field("retail_price", lambda v: _amount(v, label=_label("retail_price")))
    field(
        "cost_price",
        lambda v: _amount(v if v is not None else "0", label=_label("cost_price"), allow_zero=True),
    )
    field("face_value", lambda v: _amount(v, label=_label("face_value"), optional=True))
    field(
        "max_resale_price",
        lambda v: _amount(v, label=_label("max_resale_price"), optional=True),
    )
    field(
        "supplier_cost_ceiling",
        lambda v: _amount(v, label=_label("supplier_cost_ceiling"), optional=True),
    )
    field(
        "min_quantity_per_order",
        lambda v: _whole_number(v or 1, label=_label("min_quantity_per_order"), minimum=1),
    )
    field(
        "max_quantity_per_order",
        lambda v: _whole_number(v or 10, label=_label("max_quantity_per_order"), minimum=1),
    )
    field(
        "purchase_limit_per_buyer",
        lambda v: _whole_number(v, label=_label("purchase_limit_per_buyer"), minimum=1, optional=True),
    )
    field(
        "low_stock_threshold",
        lambda v: _whole_number(10 if v is None else v, label=_label("low_stock_threshold"), minimum=0),
    )
    field(
        "sort_order",
        lambda v: _whole_number(v or 0, label=_label("sort_order"), minimum=0),
    )
    field(
        "delivery_order",
        lambda v: _choice(
            v or DeliveryOrder.OLDEST_FIRST,
            label=_label("delivery_order"),
            choices=DeliveryOrder,
        ),
    )
    field(
        "recharge_target_rule",
        lambda v: _choice(v or "", label=_label("recharge_target_rule"), choices=RechargeTargetRule),
    )
    field(
        "redemption_mode",
        lambda v: _choice(v or RedemptionMode.NONE, label=_label("redemption_mode"), choices=RedemptionMode),
    )
    field(
        "recharge_target_regex",
        lambda v: _text(v, label=_label("recharge_target_regex"), max_length=200),
    )
    field(
        "recharge_target_label",
        lambda v: _text(v, label=_label("recharge_target_label"), max_length=40),
    )
    field(
        "off_shelf_reason",
        lambda v: _text(v, label=_label("off_shelf_reason"), max_length=200),
    )
    field("description", lambda v: sanitize_description(v or ""))
    cleaned["is_on_shelf"] = bool(values.get("is_on_shelf", False))

    def cross(name, message):
        errors.setdefault(name, []).append(message)

    retail, maximum = cleaned.get("retail_price"), cleaned.get("max_resale_price")
    if retail is not None and maximum is not None and maximum < retail:
        cross("max_resale_price", _("分站最高售价不能低于零售价"))
    low, high = (
        cleaned.get("min_quantity_per_order"),
        cleaned.get("max_quantity_per_order"),
    )
    if low is not None and high is not None and high < low:
        cross("max_quantity_per_order", _("单次最多购买不能小于单次最少购买"))

    product_type, rule = (
        cleaned.get("product_type"),
        cleaned.get("recharge_target_rule"),
    )
    if product_type == ProductType.DIRECT_RECHARGE and rule == "":
        cross("recharge_target_rule", _("直充商品必须设置充值账号校验规则"))
    if rule == RechargeTargetRule.REGEX:
        if not cleaned.get("recharge_target_regex"):
            cross("recharge_target_regex", _("选择自定义正则时必须填写充值账号正则"))
        else:
            try:
                compile_user_regex(
                    cleaned["recharge_target_regex"],
                    label=_label("recharge_target_regex"),
                )
            except ValidationError as error:
                errors.setdefault("recharge_target_regex", []).extend(error.messages)
    if product is not None and product.pk is not None and product_type:
        if product_type != ProductType.BUNDLE and product.bundle_items.exists():
            cross(
                "product_type",
                _("该商品含有套餐内容，只能是套餐类型；请先移除套餐内容"),
            )
        if product_type == ProductType.BUNDLE and product.part_of_bundles.exists():
            cross(
                "product_type",
                _("该商品已被其他套餐包含，不能改为套餐（套餐不能嵌套）"),
            )
    if errors:
        raise ValidationError(errors)
    return cleaned


def _audit_product_changes(*, actor, product: Product, before: dict, after: dict, request=None) -> None:
    """One audit row per kind of change, so the log reads '改价' / '上架' / '库存设置'."""
    groups = [
        ("catalog.product.price_change", PRICE_FIELDS),
        ("catalog.product.shelf_change", SHELF_FIELDS),
        ("catalog.product.stock_settings_change", STOCK_FIELDS),
        ("catalog.product.update", OTHER_FIELDS),
    ]
    for action, names in groups:
        changes = diff_fields(
            before={name: before[name] for name in names},
            after={name: after[name] for name in names},
        )
        if "description" in changes:
            # The text itself can be long; the log only needs to say it changed.
            changes["description"] = [_("（旧描述）"), _("（新描述）")]
        if changes:
            record_audit(
                actor=actor,
                action=action,
                target=product,
                changes=changes,
                request=request,
            )


def _values_of(product: Product) -> dict[str, Any]:
    return {name: getattr(product, name) for name in PRODUCT_FIELDS}


# --- products ---------------------------------------------------------------------------------
@transaction.atomic
def create_product(*, actor, request=None, **fields) -> Product:
    """A new product, off the shelf unless ``is_on_shelf=True`` is given and allowed."""
    _require_permission(actor, "catalog.add_product")
    cleaned = validate_product_fields(values=fields)
    if cleaned["is_on_shelf"] and cleaned["product_type"] == ProductType.BUNDLE:
        raise ValidationError({"is_on_shelf": [_("套餐要先添加套餐内容才能上架")]})
    product = Product(**cleaned)
    with setting_change(setting=_("新商品“%(name)s”的价格") % {"name": product.name}):
        product.save()
    record_audit(
        actor=actor,
        action="catalog.product.create",
        target=product,
        changes=diff_fields(
            before={},
            after={name: getattr(product, name) for name in ("name", "product_type", "category") + PRICE_FIELDS}
            | {"is_on_shelf": product.is_on_shelf},
        ),
        request=request,
    )
    return product


@transaction.atomic
def update_product(*, product: Product, actor, request=None, **changes) -> Product:
    """Apply ``changes`` to the product. Price changes need ``catalog.change_product_price``."""
    _require_permission(actor, "catalog.change_product")
    locked = Product.objects.select_for_update().get(pk=product.pk)
    before = _values_of(locked)
    intended = before | changes
    cleaned = validate_product_fields(values=intended, product=locked)
    if any(cleaned[name] != before[name] for name in PRICE_FIELDS):
        _require_permission(actor, "catalog.change_product_price")
    if cleaned["is_on_shelf"] and not before["is_on_shelf"]:
        _check_can_go_on_shelf(locked, cleaned)
    if not cleaned["is_on_shelf"] and before["is_on_shelf"] and not cleaned["off_shelf_reason"]:
        raise ValidationError({"off_shelf_reason": [_("下架时请填写下架原因")]})
    if cleaned["is_on_shelf"]:
        cleaned["off_shelf_reason"] = ""
    for name, value in cleaned.items():
        setattr(locked, name, value)
    if any(cleaned[name] != before[name] for name in PRICE_FIELDS):
        # other apps' rules read the prices (the commission guard's caps on the margin)
        with setting_change(setting=_("商品“%(name)s”的价格") % {"name": locked.name}):
            locked.save()
    else:
        locked.save()
    _audit_product_changes(
        actor=actor,
        product=locked,
        before=before,
        after=_values_of(locked),
        request=request,
    )
    for name in PRODUCT_FIELDS + ("updated_at",):
        setattr(product, name, getattr(locked, name))
    return product


def set_product_price(
    *,
    product: Product,
    actor,
    retail_price=None,
    cost_price=None,
    face_value=None,
    max_resale_price=None,
    request=None,
) -> Product:
    """Change prices (only those given); audited as 改价 with before → after."""
    _require_permission(actor, "catalog.change_product_price")
    given = {
        name: value
        for name, value in {
            "retail_price": retail_price,
            "cost_price": cost_price,
            "face_value": face_value,
            "max_resale_price": max_resale_price,
        }.items()
        if value is not None
    }
    if not given:
        raise ValidationError(_("没有要修改的价格"))
    return update_product(product=product, actor=actor, request=request, **given)


def _check_can_go_on_shelf(product: Product, cleaned: dict) -> None:
    if cleaned["product_type"] == ProductType.BUNDLE and not product.bundle_items.exists():
        raise ValidationError({"is_on_shelf": [_("套餐要先添加套餐内容才能上架")]})
    if not cleaned["category"].is_active:
        raise ValidationError({"is_on_shelf": [_("分类“%(name)s”已停用，不能上架") % {"name": cleaned["category"]}]})


def put_on_shelf(*, product: Product, actor, request=None) -> Product:
    return update_product(product=product, actor=actor, request=request, is_on_shelf=True)


def take_off_shelf(*, product: Product, actor, reason: str, request=None) -> Product:
    if not (reason or "").strip():
        raise ValidationError({"off_shelf_reason": [_("下架时请填写下架原因")]})
    return update_product(
        product=product,
        actor=actor,
        request=request,
        is_on_shelf=False,
        off_shelf_reason=reason,
    )


# --- categories -------------------------------------------------------------------------------
def _lock_category_tree() -> None:
    """django-mptt does no locking; tree writes queue on one advisory lock (STYLE: tree writes)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('catalog.category.tree'))")


def _category_values(*, name, slug, sort_order, is_active) -> dict:
    errors, cleaned = {}, {}
    for key, parse in (
        ("name", lambda: _text(name, label=_("名称"), max_length=64, required=True)),
        ("slug", lambda: _text(slug, label=_("标识"), max_length=64, required=True)),
        (
            "sort_order",
            lambda: _whole_number(sort_order or 0, label=_("排序"), minimum=0),
        ),
    ):
        try:
            cleaned[key] = parse()
        except ValidationError as error:
            errors[key] = error.messages
    if "slug" in cleaned and not all(ch.isalnum() or ch in "-_" for ch in cleaned["slug"]):
        errors["slug"] = [_("标识只能包含字母、数字、连字符和下划线")]
    cleaned["is_active"] = bool(is_active)
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def create_category(
    *, actor, name: str, slug: str, parent: Category | None = None, sort_order: int = 0, is_active: bool = True,
    request=None,
) -> Category:  # fmt: skip
    _require_permission(actor, "catalog.add_category")
    cleaned = _category_values(name=name, slug=slug, sort_order=sort_order, is_active=is_active)
    _lock_category_tree()
    if Category.objects.filter(slug=cleaned["slug"]).exists():
        raise ValidationError({"slug": [_("标识“%(slug)s”已被使用") % {"slug": cleaned["slug"]}]})
    category = Category.objects.create(parent=parent, **cleaned)
    record_audit(
        actor=actor,
        action="catalog.category.create",
        target=category,
        changes={"parent": [None, str(parent) if parent else None]},
        request=request,
    )
    return category


@transaction.atomic
def move_category(*, category: Category, actor, new_parent: Category | None, request=None) -> Category:
    """Re-parent a category; refuses a move under itself or one of its descendants."""
    _require_permission(actor, "catalog.change_category")
    _lock_category_tree()
    locked = Category.objects.select_for_update().get(pk=category.pk)
    if new_parent is not None:
        new_parent = Category.objects.get(pk=new_parent.pk)
        if new_parent.pk == locked.pk or new_parent.is_descendant_of(locked):
            raise ValidationError({"parent": [_("不能把分类移动到它自己或它的下级分类之下")]})
    old_parent = locked.parent
    if (old_parent.pk if old_parent else None) == (new_parent.pk if new_parent else None):
        return locked
    locked.move_to(new_parent, "last-child")
    locked.refresh_from_db()
    record_audit(
        actor=actor,
        action="catalog.category.move",
        target=locked,
        changes={
            "parent": [
                str(old_parent) if old_parent else None,
                str(new_parent) if new_parent else None,
            ]
        },
        request=request,
    )
    category.refresh_from_db()
    return locked


@transaction.atomic
def update_category(*, category: Category, actor, request=None, **changes) -> Category:
    """Rename / re-order / (de)activate; a new ``parent`` goes through move_category."""
    _require_permission(actor, "catalog.change_category")
    unknown = sorted(set(changes) - {"name", "slug", "sort_order", "is_active", "parent"})
    if unknown:
        raise ValidationError(_("未知的分类字段：%(fields)s") % {"fields": ", ".join(unknown)})
    _lock_category_tree()
    locked = Category.objects.select_for_update().get(pk=category.pk)
    fields = ("name", "slug", "sort_order", "is_active")
    before = {name: getattr(locked, name) for name in fields}
    cleaned = _category_values(**(before | {k: v for k, v in changes.items() if k != "parent"}))
    if Category.objects.filter(slug=cleaned["slug"]).exclude(pk=locked.pk).exists():
        raise ValidationError({"slug": [_("标识“%(slug)s”已被使用") % {"slug": cleaned["slug"]}]})
    if "parent" in changes:
        move_category(category=locked, actor=actor, new_parent=changes["parent"], request=request)
        # A fresh instance: django-mptt caches tree fields when a node is loaded.
        locked = Category.objects.get(pk=locked.pk)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.save()
    diff = diff_fields(before=before, after=cleaned)
    if diff:
        record_audit(
            actor=actor,
            action="catalog.category.update",
            target=locked,
            changes=diff,
            request=request,
        )
    category.refresh_from_db()
    return locked


# --- custom fields ----------------------------------------------------------------------------
CUSTOM_FIELD_ATTRIBUTES = (
    "label",
    "field_type",
    "is_required",
    "regex",
    "help_text",
    "sort_order",
)


@transaction.atomic
def save_custom_field(
    *, product: Product, actor, name: str, label: str, field_type: str = CustomFieldType.TEXT,
    is_required: bool = True, regex: str = "", help_text: str = "", sort_order: int = 0,
    field: ProductCustomField | None = None, request=None,
) -> ProductCustomField:  # fmt: skip
    """Create or update a field the buyer fills in at checkout: ``field`` if given (which may
    rename it), otherwise the product's field called ``name``."""
    _require_permission(actor, "catalog.change_product")
    errors, cleaned = {}, {}
    for key, parse in (
        (
            "name",
            lambda: _text(name, label=_("字段标识"), max_length=40, required=True),
        ),
        (
            "label",
            lambda: _text(label, label=_("显示名称"), max_length=40, required=True),
        ),
        (
            "field_type",
            lambda: _choice(field_type, label=_("字段类型"), choices=CustomFieldType),
        ),
        ("regex", lambda: _text(regex, label=_("校验正则"), max_length=200)),
        ("help_text", lambda: _text(help_text, label=_("提示"), max_length=120)),
        (
            "sort_order",
            lambda: _whole_number(sort_order or 0, label=_("排序"), minimum=0),
        ),
    ):
        try:
            cleaned[key] = parse()
        except ValidationError as error:
            errors[key] = error.messages
    if cleaned.get("name") and not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in cleaned["name"]):
        errors["name"] = [_("字段标识只能包含英文字母、数字、连字符和下划线")]
    if cleaned.get("regex"):
        try:
            compile_user_regex(cleaned["regex"], label=_("校验正则"))
        except ValidationError as error:
            errors["regex"] = error.messages
    if errors:
        raise ValidationError(errors)
    cleaned["is_required"] = bool(is_required)
    fields = ProductCustomField.objects.select_for_update().filter(product=product)
    if field is not None and field.pk is not None:
        field = fields.get(pk=field.pk)
    else:
        field = fields.filter(name=cleaned["name"]).first()
    if fields.filter(name=cleaned["name"]).exclude(pk=field.pk if field else None).exists():
        raise ValidationError({"name": [_("字段标识“%(name)s”已存在") % {"name": cleaned["name"]}]})
    attributes = ("name",) + CUSTOM_FIELD_ATTRIBUTES
    before = {key: getattr(field, key) for key in attributes} if field else {}
    if field is None:
        field = ProductCustomField(product=product)
    for key in attributes:
        setattr(field, key, cleaned[key])
    field.save()
    changes = diff_fields(before=before, after={key: cleaned[key] for key in attributes})
    if changes:
        record_audit(
            actor=actor,
            action="catalog.product.custom_field_save",
            target=product,
            changes={f"{field.name}.{key}": value for key, value in changes.items()},
            request=request,
        )
    return field


@transaction.atomic
def remove_custom_field(*, field: ProductCustomField, actor, request=None) -> None:
    _require_permission(actor, "catalog.change_product")
    product = field.product
    record_audit(
        actor=actor,
        action="catalog.product.custom_field_remove",
        target=product,
        changes={field.name: [field.label, None]},
        request=request,
    )
    field.delete()


# --- bundles ----------------------------------------------------------------------------------
@transaction.atomic
def add_bundle_item(*, bundle: Product, component, quantity: int = 1, actor, request=None) -> BundleItem:
    """Put ``quantity`` of ``component`` in the bundle (or change its quantity).

    Bundles do not nest, which rules out cycles; each component keeps its own type, so the
    order pipeline fulfils a card-key part from the vault and a top-up part through a supplier."""
    _require_permission(actor, "catalog.change_product")
    bundle = Product.objects.select_for_update().get(pk=bundle.pk)
    component_pk = component.pk if isinstance(component, Product) else component
    component = Product.objects.filter(pk=component_pk).first() if is_ascii_integer(str(component_pk)) else None
    errors = {}
    try:
        quantity = _whole_number(quantity, label=_("数量"), minimum=1)
    except ValidationError as error:
        errors["quantity"] = error.messages
    if bundle.product_type != ProductType.BUNDLE:
        errors["bundle"] = [_("只有套餐类型的商品才能添加套餐内容（%(name)s 是%(type)s）") % {
            "name": bundle.name, "type": bundle.get_product_type_display()}]  # fmt: skip
    if component is None:
        errors["component"] = [_("要加入套餐的商品不存在")]
    elif component.pk == bundle.pk:
        errors["component"] = [_("套餐不能包含它自己")]
    elif component.product_type == ProductType.BUNDLE:
        errors["component"] = [_("套餐不能包含另一个套餐")]
    if errors:
        raise ValidationError(errors)
    item = BundleItem.objects.filter(bundle=bundle, component=component).first()
    old_quantity = item.quantity if item else None
    if item is None:
        item = BundleItem(bundle=bundle, component=component)
    item.quantity = quantity
    item.save()
    if old_quantity != quantity:
        record_audit(
            actor=actor,
            action="catalog.bundle.item_save",
            target=bundle,
            changes={f"{component.name}": [old_quantity, quantity]},
            request=request,
        )
    return item


@transaction.atomic
def remove_bundle_item(*, item: BundleItem, actor, request=None) -> None:
    _require_permission(actor, "catalog.change_product")
    bundle = Product.objects.select_for_update().get(pk=item.bundle_id)
    if bundle.is_on_shelf and bundle.bundle_items.count() == 1:
        raise ValidationError(_("上架中的套餐至少要有一项内容；请先下架"))
    record_audit(
        actor=actor,
        action="catalog.bundle.item_remove",
        target=bundle,
        changes={str(item.component): [item.quantity, None]},
        request=request,
    )
    item.delete()


# --- images -----------------------------------------------------------------------------------
@transaction.atomic
def add_product_image(*, product: Product, upload, actor, sort_order: int = 0, request=None) -> ProductImage:
    """Validate, clean (EXIF removed) and store an image with its thumbnail."""
    _require_permission(actor, "catalog.change_product")
    processed = process_product_image(upload)
    image = ProductImage(
        product=product,
        width=processed.width,
        height=processed.height,
        sort_order=sort_order,
    )
    image.image.save(f"product-{product.pk}.{processed.extension}", processed.image, save=False)
    image.thumbnail.save(
        f"product-{product.pk}-thumb.{processed.extension}",
        processed.thumbnail,
        save=False,
    )
    try:
        image.save()
    except Exception:
        image.image.delete(save=False)
        image.thumbnail.delete(save=False)
        raise
    record_audit(
        actor=actor,
        action="catalog.product.image_add",
        target=product,
        changes={"image": [None, image.image.name]},
        request=request,
    )
    return image


@transaction.atomic
def remove_product_image(*, image: ProductImage, actor, request=None) -> None:
    _require_permission(actor, "catalog.change_product")
    record_audit(
        actor=actor,
        action="catalog.product.image_remove",
        target=image.product,
        changes={"image": [image.image.name, None]},
        request=request,
    )
    files = [image.image.name, image.thumbnail.name]
    storage = image.image.storage
    image.delete()
    transaction.on_commit(lambda: [storage.delete(name) for name in files if name])
