"""Card-key stock: claiming keys for delivery. Claims never block each other and never overlap."""

import contextlib

from django.db import connection, transaction
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


def claim_card_keys(*, product: Product, quantity: int) -> list[CardKey]:
    """Mark ``quantity`` available, unexpired keys of ``product`` sold and return them.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take different rows instead of queueing
    on the same ones; all or nothing: too few keys raises InsufficientStock and claims none.
    Keys come back in the product's delivery order.

    The product filter is written as a range (``product_id >= p AND product_id <= p``) with
    ``product_id`` leading the ORDER BY: the same rows in the same order, but the planner can no
    longer treat the order as "by id" alone, which it served by walking the primary key through
    every other product's keys and every sold key (15 ms a claim at 100,000 keys); it walks the
    partial index of the product's available keys instead (0.05 ms).

    On PostgreSQL this is the hot path of fulfilment, so it is one statement with no ORM query
    building: it picks and locks the keys, marks them sold only if there are enough, and returns
    them with how many it found. Outside a transaction that statement is its own transaction (no
    BEGIN/COMMIT round trips); inside one, a savepoint still releases the locks of a claim that
    found too few keys.
    """
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    now = timezone.now()
    if connection.vendor == "postgresql":
        order = {
            DeliveryOrder.FIRST_EXPIRING: "expires_at ASC NULLS LAST, id",
            DeliveryOrder.RANDOM: "random()",
        }.get(product.delivery_order, "id")
        fields = CardKey._meta.concrete_fields
        table = connection.ops.quote_name(CardKey._meta.db_table)
        sql = f"""
            WITH picked AS MATERIALIZED (
                SELECT id FROM {table}
                WHERE product_id >= %(product)s AND product_id <= %(product)s AND status = %(available)s
                    AND (expires_at IS NULL OR expires_at > %(now)s)
                ORDER BY product_id, {order}
                LIMIT %(quantity)s
                FOR UPDATE SKIP LOCKED
            ), found AS (
                SELECT count(*) AS found FROM picked
            ), claimed AS (
                UPDATE {table} AS card_key SET status = %(sold)s, sold_at = %(now)s
                FROM picked, found WHERE card_key.id = picked.id AND found.found = %(quantity)s
                RETURNING card_key.*
            )
            SELECT found.found, {", ".join("claimed." + connection.ops.quote_name(field.column) for field in fields)}
            FROM found LEFT JOIN claimed ON true
            ORDER BY {order}
        """
        parameters = {
            "product": product.pk,
            "available": CardKeyStatus.AVAILABLE.value,
            "sold": CardKeyStatus.SOLD.value,
            "now": now,
            "quantity": quantity,
        }
        in_transaction = connection.in_atomic_block or not connection.get_autocommit()
        with transaction.atomic() if in_transaction else contextlib.nullcontext(), connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            if rows[0][0] < quantity:
                raise InsufficientStock(product, quantity, rows[0][0])  # nothing was marked sold
        attribute_names = [field.attname for field in fields]
        return [CardKey.from_db(connection.alias, attribute_names, row[1:]) for row in rows]
    with transaction.atomic():
        candidates = (
            CardKey.objects.filter(product__gte=product.pk, product__lte=product.pk, status=CardKeyStatus.AVAILABLE)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .order_by("product_id", *_delivery_ordering(product))
            .select_for_update(skip_locked=True, of=("self",))
        )
        keys = list(candidates[:quantity])
        if len(keys) < quantity:
            raise InsufficientStock(product, quantity, len(keys))
        CardKey.objects.filter(pk__in=[key.pk for key in keys]).update(status=CardKeyStatus.SOLD, sold_at=now)
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
