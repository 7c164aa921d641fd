"""Card-key stock: levels and alerts, voiding, revealing a secret (the keys of an order are
reserved, sold and claimed in ``card_keys``)."""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import CardKey, CardKeyStatus, Product

__all__ = [
    "VOID_REASON_MAX_LENGTH",
    "check_stock_level",
    "check_stock_levels",
    "reveal_card_key_secret",
    "void_card_keys",
]


def reveal_card_key_secret(*, card_key: CardKey, actor, request=None) -> str:
    """Decrypt one secret for a member of staff; only with the permission, and always audited."""
    from django.core.exceptions import PermissionDenied

    from kamen import crypto
    from kamen.audit import record_audit

    if actor is None or not actor.has_perm("catalog.reveal_cardkey_secret"):
        raise PermissionDenied("revealing card-key secrets needs the catalog.reveal_cardkey_secret permission")
    secret = crypto.decrypt(key_id=card_key.key_id, blob=card_key.secret_ciphertext)
    record_audit(actor=actor, action="card_keys.secret_revealed", target=card_key, request=request)
    return secret


# --- stock levels and alerts ------------------------------------------------------------------
def _available_counts(product_ids: list[int] | None = None) -> dict[int, int]:
    """Sellable keys per product: available and not expired (expired keys are never claimed)."""
    keys = CardKey.objects.filter(status=CardKeyStatus.AVAILABLE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    if product_ids is not None:
        keys = keys.filter(product_id__in=product_ids)
    return dict(keys.values("product_id").annotate(available=Count("id")).values_list("product_id", "available"))


def _watched_level(product: Product, counts: dict[int, int]) -> int | None:
    """What the threshold is compared with. A product with an active reusable key sells from its
    cap, not from card-key rows: the level is the room left under the cap, and None (nothing to
    watch) when the cap is unlimited."""
    reusable = getattr(product, "reusable_key", None)
    if reusable is not None and reusable.is_active:
        if reusable.sales_cap is None:
            return None
        return max(reusable.sales_cap - reusable.sold_count, 0)
    return counts.get(product.pk, 0)


def _apply_stock_level(product: Product, level: int | None):
    """Open or resolve the product's alert; returns a newly opened alert (to be emailed)."""
    from catalog.models import StockAlert

    threshold = product.low_stock_threshold
    with transaction.atomic():
        open_alert = StockAlert.objects.select_for_update().filter(product=product, resolved_at__isnull=True).first()
        if level is not None and level <= threshold and open_alert is None:
            try:
                with transaction.atomic():
                    return StockAlert.objects.create(product=product, threshold=threshold, available_count=level)
            except IntegrityError:
                # A concurrent check opened it first (one open alert per product is a constraint).
                return None
        if (level is None or level > threshold) and open_alert is not None:
            open_alert.resolved_at = timezone.now()
            open_alert.save(update_fields=["resolved_at"])
    return None


def _email_alerts(opened: list) -> None:
    """Outside any transaction: mail is a network call."""
    if not opened:
        return
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    from catalog.models import StockAlert
    from kamen.roles import OPERATOR, OWNER

    recipients = set(settings.MERCHANT_ALERT_EMAILS) | set(
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name__in=[OWNER, OPERATOR])
        .exclude(email="")
        .values_list("email", flat=True)
    )
    for alert in opened:
        if recipients:
            send_mail(
                subject=_("[Kamen] 库存预警：%(product)s 仅剩 %(count)s 张")
                % {"product": alert.product.name, "count": alert.available_count},
                message=_("商品“%(product)s”可售卡密 %(count)s 张，已低于预警值 %(threshold)s。请及时补充库存。")
                % {"product": alert.product.name, "count": alert.available_count, "threshold": alert.threshold},
                from_email=None,
                recipient_list=sorted(recipients),
            )
            StockAlert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())


def check_stock_levels() -> list:
    """Open an alert (and email once) for every card-key product at or below its threshold;
    resolve alerts whose stock was refilled. Safe to run as often as beat likes."""
    from catalog.models import ProductType

    counts = _available_counts()
    opened = []
    products = Product.objects.filter(product_type=ProductType.CARD_KEY, is_on_shelf=True).select_related("reusable_key")
    for product in products:
        alert = _apply_stock_level(product, _watched_level(product, counts))
        if alert is not None:
            opened.append(alert)
    _email_alerts(opened)
    return opened


def check_stock_level(*, product: Product):
    """The same check for one product, right after its stock or threshold changed (an import
    finished, keys were voided, the threshold was edited), so an alert opens or resolves at once
    instead of at the next beat. Returns the alert it opened, if any."""
    from catalog.models import ProductType

    product = Product.objects.select_related("reusable_key").get(pk=product.pk)
    if product.product_type != ProductType.CARD_KEY or not product.is_on_shelf:
        return None
    alert = _apply_stock_level(product, _watched_level(product, _available_counts([product.pk])))
    _email_alerts([alert] if alert is not None else [])
    return alert


# --- voiding ----------------------------------------------------------------------------------
VOID_REASON_MAX_LENGTH = 200


def void_card_keys(*, card_key_ids: Iterable[int], reason: str, actor, request=None) -> int:
    """Take available keys out of sale for good (leaked, refunded by the supplier, wrong batch).

    All or nothing: a sold or reserved key in the selection refuses the whole request, because
    it already belongs to an order. Keys already void are skipped, so a repeated request is
    harmless. The reason goes to the audit log (one row per product); returns how many keys
    were voided now.
    """
    from kamen.audit import record_audit

    if actor is not None and not actor.has_perm("catalog.change_cardkey"):
        raise PermissionDenied(_("你没有作废卡密的权限（catalog.change_cardkey）"))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写作废原因")]})
    if len(reason) > VOID_REASON_MAX_LENGTH:
        raise ValidationError({"reason": [_("作废原因最多 %(max)s 个字符") % {"max": VOID_REASON_MAX_LENGTH}]})
    try:
        ids = sorted({int(pk) for pk in card_key_ids})
    except (TypeError, ValueError):
        raise ValidationError(_("卡密编号无效")) from None
    if not ids:
        raise ValidationError(_("请先选择要作废的卡密"))

    with transaction.atomic():
        keys = list(
            CardKey.objects.filter(pk__in=ids)
            .order_by("pk")
            .select_for_update(of=("self",))
            .only("id", "product_id", "status")
        )
        missing = sorted(set(ids) - {key.pk for key in keys})
        if missing:
            raise ValidationError(
                _("以下卡密不存在：%(ids)s；没有任何卡密被作废") % {"ids": ", ".join(f"#{pk}" for pk in missing[:20])}
            )
        taken = [key for key in keys if key.status in (CardKeyStatus.SOLD, CardKeyStatus.RESERVED)]
        if taken:
            raise ValidationError(
                _("已售出或已预留的卡密不能作废：%(ids)s（共 %(count)s 张）；没有任何卡密被作废")
                % {"ids": ", ".join(f"#{key.pk}" for key in taken[:20]), "count": len(taken)}
            )
        to_void: dict[int, list[int]] = {}
        for key in keys:
            if key.status == CardKeyStatus.AVAILABLE:
                to_void.setdefault(key.product_id, []).append(key.pk)
        now = timezone.now()
        voided = CardKey.objects.filter(
            pk__in=[pk for pks in to_void.values() for pk in pks], status=CardKeyStatus.AVAILABLE
        ).update(status=CardKeyStatus.VOID, voided_at=now)
        products = Product.objects.in_bulk(list(to_void))
        for product_id, pks in sorted(to_void.items()):
            record_audit(
                actor=actor,
                action="card_keys.voided",
                target=products[product_id],
                changes={
                    "status": [CardKeyStatus.AVAILABLE.value, CardKeyStatus.VOID.value],
                    "count": len(pks),
                    "card_key_ids": pks[:1000],
                    "reason": reason,
                },
                request=request,
            )
    for product in products.values():
        check_stock_level(product=product)
    return voided
