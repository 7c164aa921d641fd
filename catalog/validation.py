"""Validation of what buyers type (recharge targets, custom fields) and of merchant rich text.

Checkout (the orders issue) calls these; the messages are shown to the buyer as they are.
"""

import re
import unicodedata

import nh3
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from catalog import sql as catalog_sql
from kamen.db import fetch_rows, instance_from_row

from .models import CustomFieldType, Product, ProductCustomField, RechargeTargetRule

MOBILE_RE = re.compile(r"1[3-9]\d{9}", re.ASCII)
QQ_RE = re.compile(r"[1-9]\d{4,10}", re.ASCII)
GAME_UID_RE = re.compile(r"\d{1,32}", re.ASCII)
NUMBER_RE = re.compile(r"-?\d+(\.\d+)?", re.ASCII)
MAX_REGEX_LENGTH = 200
DEFAULT_FIELD_MAX_LENGTH = 200


def clean_text(value) -> str:
    """Strip surrounding space and control characters (tabs and newlines included): a target or
    a field value is one line, and control characters only ever confuse suppliers and logs."""
    text = "" if value is None else str(value)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return text.strip()


def compile_user_regex(pattern: str, *, label: str) -> re.Pattern:
    """Compile a merchant-entered regex, or raise a ValidationError naming the field."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValidationError(_("%(label)s太长（最多 %(max)s 个字符）") % {"label": label, "max": MAX_REGEX_LENGTH})
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValidationError(
            _("%(label)s不是有效的正则表达式：%(error)s") % {"label": label, "error": error}
        ) from None


# What an order's ``recharge_target`` column holds.
RECHARGE_TARGET_MAX_LENGTH = 120


def validate_recharge_target(*, product: Product, target) -> str:
    """The cleaned top-up target (phone, QQ, e-mail, game UID ...) or a ValidationError."""
    value = clean_text(target)
    label = product.recharge_target_label or _("充值账号")
    if not value:
        raise ValidationError(_("请填写%(label)s") % {"label": label}, code="required")
    if len(value) > RECHARGE_TARGET_MAX_LENGTH:
        raise ValidationError(
            _("%(label)s过长（最多 %(limit)s 个字符）") % {"label": label, "limit": RECHARGE_TARGET_MAX_LENGTH},
            code="max_length",
        )
    rule = product.recharge_target_rule
    if rule == RechargeTargetRule.MOBILE:
        if not MOBILE_RE.fullmatch(value):
            raise ValidationError(_("请输入正确的 11 位中国大陆手机号"), code="invalid")
    elif rule == RechargeTargetRule.QQ:
        if not QQ_RE.fullmatch(value):
            raise ValidationError(_("QQ 号应为 5–11 位数字，且不能以 0 开头"), code="invalid")
    elif rule == RechargeTargetRule.EMAIL:
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError(_("请输入正确的邮箱地址"), code="invalid") from None
    elif rule == RechargeTargetRule.GAME_UID:
        if not GAME_UID_RE.fullmatch(value):
            raise ValidationError(_("游戏 UID 只能包含数字"), code="invalid")
    elif rule == RechargeTargetRule.REGEX:
        pattern = compile_user_regex(product.recharge_target_regex, label=_("充值账号正则"))
        if not pattern.fullmatch(value):
            raise ValidationError(_("%(label)s格式不正确") % {"label": label}, code="invalid")
    return value


def _validate_field(field: ProductCustomField, raw) -> str:
    value = clean_text(raw)
    if not value:
        if field.is_required:
            raise ValidationError(_("请填写%(label)s") % {"label": field.label}, code="required")
        return ""
    if len(value) > DEFAULT_FIELD_MAX_LENGTH:
        raise ValidationError(
            _("%(label)s太长（最多 %(max)s 个字符）") % {"label": field.label, "max": DEFAULT_FIELD_MAX_LENGTH},
            code="max_length",
        )
    if field.field_type == CustomFieldType.NUMBER and not NUMBER_RE.fullmatch(value):
        raise ValidationError(_("%(label)s必须是数字") % {"label": field.label}, code="invalid")
    if field.field_type == CustomFieldType.MOBILE and not MOBILE_RE.fullmatch(value):
        raise ValidationError(
            _("%(label)s必须是 11 位中国大陆手机号") % {"label": field.label},
            code="invalid",
        )
    if field.field_type == CustomFieldType.QQ and not QQ_RE.fullmatch(value):
        raise ValidationError(
            _("%(label)s必须是 5–11 位数字且不以 0 开头") % {"label": field.label},
            code="invalid",
        )
    if field.field_type == CustomFieldType.EMAIL:
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError(
                _("%(label)s不是有效的邮箱地址") % {"label": field.label},
                code="invalid",
            ) from None
    if field.regex:
        pattern = compile_user_regex(field.regex, label=_("校验正则"))
        if not pattern.fullmatch(value):
            raise ValidationError(_("%(label)s格式不正确") % {"label": field.label}, code="invalid")
    return value


def custom_fields_of(product: Product) -> list[ProductCustomField]:
    """The product's custom fields in display order: the prefetched ones when the page loaded
    them, else one prepared read (every checkout asks, and most products have none)."""
    prefetched = getattr(product, "_prefetched_objects_cache", {}).get("custom_fields")
    if prefetched is not None:
        return list(prefetched)
    rows = fetch_rows(catalog_sql.custom_fields(), [product.pk])
    return [instance_from_row(ProductCustomField, row) for row in rows]


def validate_buyer_fields(*, product: Product, data: dict) -> dict:
    """{field name: cleaned value} for the product's custom fields; a ValidationError carries
    one message per bad field (keyed by the field name) so a form can show each beside its input.
    Keys the product does not define are dropped."""
    cleaned, errors = {}, {}
    for field in custom_fields_of(product):
        try:
            cleaned[field.name] = _validate_field(field, data.get(field.name))
        except ValidationError as error:
            errors[field.name] = error.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- Rich text --------------------------------------------------------------------------------
DESCRIPTION_TAGS = {
    "p", "br", "b", "strong", "i", "em", "u", "s", "del", "ul", "ol", "li", "blockquote",
    "h2", "h3", "h4", "a", "img", "span", "code", "pre", "hr", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
DESCRIPTION_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


def _only_http_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.lower().startswith(("http://", "https://")):
        return None
    return value


def sanitize_description(html: str) -> str:
    """Merchant rich text made safe to render: basic formatting, links (rel=noopener), images from
    http(s) only; scripts, styles, event handlers and javascript: URLs removed."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=DESCRIPTION_TAGS,
        attributes=DESCRIPTION_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_only_http_images,
        strip_comments=True,
    ).strip()
