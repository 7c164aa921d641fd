"""Card-key stock: claiming keys for delivery. Claims never block each other and never overlap."""

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.models import CardKey, CardKeyStatus, DeliveryOrder, Product

__all__ = ["InsufficientStock", "check_stock_levels", "claim_card_keys", "reveal_card_key_secret"]


class InsufficientStock(Exception):
    def __init__(self, product: Product, wanted: int, available: int):
        super().__init__(f"{product}: {wanted} card keys wanted, {available} available")
        self.wanted = wanted
        self.available = available


def _delivery_ordering(product: Product) -> list:
    if product.delivery_order == DeliveryOrder.FIRST_EXPIRING:
        return [F("expires_at").asc(nulls_last=True), "id"]
    if product.delivery_order == DeliveryOrder.RANDOM:
        return ["?"]
    return ["id"]


def claim_card_keys(*, product: Product, quantity: int, reference: str = "") -> list[CardKey]:
    """Mark ``quantity`` available, unexpired keys of ``product`` sold and return them.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take different rows instead of queueing
    on the same ones; all or nothing: too few keys raises InsufficientStock and claims none.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    now = timezone.now()
    with transaction.atomic():
        candidates = (
            CardKey.objects.filter(product=product, status=CardKeyStatus.AVAILABLE)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .order_by(*_delivery_ordering(product))
            .select_for_update(skip_locked=True, of=("self",))
        )
        keys = list(candidates[:quantity])
        if len(keys) < quantity:
            raise InsufficientStock(product, quantity, len(keys))
        CardKey.objects.filter(pk__in=[key.pk for key in keys]).update(status=CardKeyStatus.SOLD, sold_at=now, sold_to=reference)
    for key in keys:
        key.status, key.sold_at = CardKeyStatus.SOLD, now
    return keys


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


def check_stock_levels() -> list:
    """Open an alert (and email once) for every card-key product at or below its threshold;
    resolve alerts whose stock was refilled. Safe to run as often as beat likes."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail
    from django.db.models import Count

    from catalog.models import ProductType, StockAlert
    from kamen.roles import OPERATOR, OWNER

    now = timezone.now()
    counts = dict(
        CardKey.objects.filter(status=CardKeyStatus.AVAILABLE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values("product_id")
        .annotate(available=Count("id"))
        .values_list("product_id", "available")
    )
    opened = []
    for product in Product.objects.filter(product_type=ProductType.CARD_KEY, is_on_shelf=True):
        available = counts.get(product.pk, 0)
        with transaction.atomic():
            open_alert = StockAlert.objects.select_for_update().filter(product=product, resolved_at__isnull=True).first()
            if available <= product.low_stock_threshold and open_alert is None:
                opened.append(
                    StockAlert.objects.create(
                        product=product, threshold=product.low_stock_threshold, available_count=available
                    )
                )
            elif available > product.low_stock_threshold and open_alert is not None:
                open_alert.resolved_at = now
                open_alert.save(update_fields=["resolved_at"])
    recipients = set(settings.MERCHANT_ALERT_EMAILS) | set(
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name__in=[OWNER, OPERATOR])
        .exclude(email="")
        .values_list("email", flat=True)
    )
    for alert in opened:
        if recipients:
            send_mail(
                subject=f"[Kamen] 库存预警：{alert.product.name} 仅剩 {alert.available_count} 张",
                message=(
                    f"商品“{alert.product.name}”可售卡密 {alert.available_count} 张，"
                    f"已低于预警值 {alert.threshold}。请及时补充库存。"
                ),
                from_email=None,
                recipient_list=sorted(recipients),
            )
            StockAlert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())
    return opened
