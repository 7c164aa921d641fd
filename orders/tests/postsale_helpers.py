"""Small builders shared by the post-sale tests (look-up, redemption, console)."""

from datetime import timedelta
from decimal import Decimal
from itertools import count

from django.contrib.auth.hashers import make_password
from django.utils import timezone

from catalog.models import Category, Product, ProductType
from catalog.models.products import RedemptionMode
from orders.models import Order, OrderStatus

_numbers = count(1)


def make_product(*, name="Steam 50", redemption_mode=RedemptionMode.NONE, product_type=ProductType.CARD_KEY) -> Product:
    category, _ = Category.objects.get_or_create(slug="postsale", defaults={"name": "售后测试"})
    return Product.objects.create(
        category=category,
        name=name,
        product_type=product_type,
        retail_price=Decimal("48.00"),
        redemption_mode=redemption_mode,
    )


def make_order(
    *,
    product: Product | None = None,
    password="secret-pass",
    contact="buyer@example.com",
    status=OrderStatus.COMPLETED,
    quantity=1,
    buyer_fields=None,
    product_name=None,
) -> Order:
    product = product or make_product()
    paid = status != OrderStatus.PENDING_PAYMENT
    total = Decimal("48.00") * quantity
    return Order.objects.create(
        order_no=f"K2611230000{next(_numbers):06d}",
        status=status,
        product=product,
        product_name=product_name or product.name,
        product_type=product.product_type,
        quantity=quantity,
        unit_price=Decimal("48.00"),
        total_amount=total,
        paid_amount=total if paid else Decimal("0"),
        paid_at=timezone.now() if paid else None,
        contact=contact,
        contact_kind="email" if "@" in contact else "mobile",
        query_password_hash=make_password(password),
        buyer_fields=buyer_fields or {},
        expires_at=timezone.now() + timedelta(minutes=15),
    )
