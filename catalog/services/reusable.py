"""Reusable card keys (循环卡密): every buyer of a product receives the same secret, up to a cap.

How a product is marked reusable: a ``card_key`` product is reusable exactly when it has an
*active* ``ReusableCardKey`` row (``catalog.selectors.is_reusable_key_product``). Fulfilment
then calls ``claim_reusable_key`` instead of ``claim_card_keys``; the product's card-key rows,
if any, are left alone. Deactivating the row turns the product back into an ordinary card-key
product without losing the secret or the count sold.

The cap is enforced by one conditional UPDATE (``sold_count + n <= sales_cap``) with ``F()``:
PostgreSQL re-checks the condition on the newest row version when concurrent buyers queue on
the row, so the cap can never be passed, and the CheckConstraint ``reusable_key_within_cap``
is the backstop. The secret is AES-GCM ciphertext (``kamen.crypto``) and never reaches the
audit log, logs or error messages.
"""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Product, ProductType, ReusableCardKey
from kamen import crypto
from kamen.audit import record_audit
from kamen.parsing import parse_integer

from .card_keys import InsufficientStock

__all__ = [
    "REUSABLE_SECRET_MAX_LENGTH",
    "activate_reusable_key",
    "claim_reusable_key",
    "deactivate_reusable_key",
    "reveal_reusable_key_secret",
    "set_reusable_key_cap",
    "set_reusable_key_secret",
    "validate_reusable_key_cap",
]

logger = logging.getLogger(__name__)

REUSABLE_SECRET_MAX_LENGTH = 4_000
MAX_CAP = 2_147_483_647


def _require_permission(actor, permission: str) -> None:
    """None is the system (demo loader); a person needs the permission."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(_("你没有执行此操作的权限（%(permission)s）") % {"permission": permission})


def validate_reusable_key_cap(raw: int | str | None, *, sold_count: int = 0) -> int | None:
    """Blank means unlimited; otherwise a whole number of at least 1 and not below what is
    already sold (the buyers who have the secret cannot be taken back)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (bool, float)):
        raise ValidationError({"sales_cap": [_("销售上限必须是整数")]})
    try:
        cap = parse_integer(raw)
    except ValueError:
        raise ValidationError({"sales_cap": [_("销售上限必须是整数")]}) from None
    if cap < 1:
        raise ValidationError({"sales_cap": [_("销售上限至少为 1；不限量请留空，停售请停用")]})
    if cap > MAX_CAP:
        raise ValidationError({"sales_cap": [_("销售上限过大")]})
    if cap < sold_count:
        raise ValidationError(
            {
                "sales_cap": [
                    _("销售上限 %(cap)s 低于已售数量 %(sold)s，已售出的不能收回") % {"cap": cap, "sold": sold_count}
                ]
            }
        )
    return cap


def _clean_secret(secret) -> str:
    value = "" if secret is None else str(secret).strip()
    if not value:
        raise ValidationError({"secret": [_("请填写循环卡密内容")]})
    if len(value) > REUSABLE_SECRET_MAX_LENGTH:
        raise ValidationError(
            {"secret": [_("循环卡密最多 %(max)s 个字符") % {"max": REUSABLE_SECRET_MAX_LENGTH}]}
        )
    return value


def set_reusable_key_secret(*, product: Product, secret: str, actor, request=None) -> ReusableCardKey:
    """Store (or replace) the product's shared secret, encrypted. Creating the row makes the
    product reusable (active, no cap until one is set); replacing keeps cap, count and state.
    The audit row says that the secret changed, never what it is."""
    secret = _clean_secret(secret)
    if product.product_type != ProductType.CARD_KEY:
        raise ValidationError(
            {"product": [_("只有卡密类商品可以设置循环卡密（“%(name)s”不是卡密商品）") % {"name": product.name}]}
        )
    with transaction.atomic():
        reusable = ReusableCardKey.objects.select_for_update().filter(product=product).first()
        creating = reusable is None
        _require_permission(actor, "catalog.add_reusablecardkey" if creating else "catalog.change_reusablecardkey")
        key_id, blob = crypto.encrypt(secret)
        if creating:
            reusable = ReusableCardKey.objects.create(product=product, secret_ciphertext=blob, key_id=key_id)
        else:
            reusable.secret_ciphertext, reusable.key_id = blob, key_id
            reusable.save(update_fields=["secret_ciphertext", "key_id", "updated_at"])
        record_audit(
            actor=actor,
            action="catalog.reusable_key.create" if creating else "catalog.reusable_key.secret_replaced",
            target=reusable,
            changes={"secret": ["***", "***"]} | ({"is_active": [None, True]} if creating else {}),
            request=request,
        )
    return reusable


def set_reusable_key_cap(
    *, reusable_key: ReusableCardKey, sales_cap: int | str | None, actor, request=None
) -> ReusableCardKey:
    """Change the sales cap (blank: unlimited). A cap below what is already sold is refused."""
    _require_permission(actor, "catalog.change_reusablecardkey")
    with transaction.atomic():
        locked = ReusableCardKey.objects.select_for_update().get(pk=reusable_key.pk)
        cap = validate_reusable_key_cap(sales_cap, sold_count=locked.sold_count)
        if cap != locked.sales_cap:
            old = locked.sales_cap
            locked.sales_cap = cap
            locked.save(update_fields=["sales_cap", "updated_at"])
            record_audit(
                actor=actor,
                action="catalog.reusable_key.cap_change",
                target=locked,
                changes={"sales_cap": [old, cap], "sold_count": locked.sold_count},
                request=request,
            )
    reusable_key.sales_cap, reusable_key.sold_count = locked.sales_cap, locked.sold_count
    return reusable_key


def _set_active(*, reusable_key: ReusableCardKey, is_active: bool, actor, request=None) -> ReusableCardKey:
    _require_permission(actor, "catalog.change_reusablecardkey")
    with transaction.atomic():
        locked = ReusableCardKey.objects.select_for_update().get(pk=reusable_key.pk)
        if locked.is_active != is_active:
            locked.is_active = is_active
            locked.save(update_fields=["is_active", "updated_at"])
            record_audit(
                actor=actor,
                action="catalog.reusable_key.activated" if is_active else "catalog.reusable_key.deactivated",
                target=locked,
                changes={"is_active": [not is_active, is_active]},
                request=request,
            )
    reusable_key.is_active = is_active
    return reusable_key


def activate_reusable_key(*, reusable_key: ReusableCardKey, actor, request=None) -> ReusableCardKey:
    """The product sells the shared secret again."""
    return _set_active(reusable_key=reusable_key, is_active=True, actor=actor, request=request)


def deactivate_reusable_key(*, reusable_key: ReusableCardKey, actor, request=None) -> ReusableCardKey:
    """Stop selling the shared secret; the product falls back to ordinary card-key stock."""
    return _set_active(reusable_key=reusable_key, is_active=False, actor=actor, request=request)


def claim_reusable_key(*, product: Product, quantity: int, reference: str) -> str:
    """Count ``quantity`` sales against the cap and return the decrypted secret for delivery.

    One conditional UPDATE does the counting, so concurrent buyers never pass the cap; too
    little room raises InsufficientStock and counts nothing. Call it inside the transaction that
    records the delivery on the order (it joins that transaction), so a retried fulfilment that
    finds the order already delivered never counts twice. ``reference`` (the order number) goes
    to the log, the secret never does.
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError("quantity must be a whole number of at least 1")
    with transaction.atomic():
        counted = (
            ReusableCardKey.objects.filter(product=product, is_active=True)
            .filter(Q(sales_cap__isnull=True) | Q(sold_count__lte=F("sales_cap") - quantity))
            .update(sold_count=F("sold_count") + quantity, updated_at=timezone.now())
        )
        reusable = ReusableCardKey.objects.filter(product=product).first()
        if not counted:
            if reusable is None or not reusable.is_active:
                remaining = 0
            else:
                remaining = max((reusable.sales_cap or 0) - reusable.sold_count, 0)
            logger.info(
                "reusable_key.claim_refused",
                extra={"product_id": product.pk, "quantity": quantity, "remaining": remaining, "reference": reference},
            )
            raise InsufficientStock(product, quantity, remaining)
        secret = crypto.decrypt(key_id=reusable.key_id, blob=reusable.secret_ciphertext)
    logger.info(
        "reusable_key.claimed",
        extra={"product_id": product.pk, "quantity": quantity, "sold_count": reusable.sold_count, "reference": reference},
    )
    return secret


def reveal_reusable_key_secret(*, reusable_key: ReusableCardKey, actor, request=None) -> str:
    """Decrypt the shared secret for a member of staff: the same permission and audit as
    revealing one card key."""
    if actor is None or not actor.has_perm("catalog.reveal_cardkey_secret"):
        raise PermissionDenied(_("查看卡密明文需要 catalog.reveal_cardkey_secret 权限"))
    secret = crypto.decrypt(key_id=reusable_key.key_id, blob=reusable_key.secret_ciphertext)
    record_audit(actor=actor, action="catalog.reusable_key.secret_revealed", target=reusable_key, request=request)
    return secret
