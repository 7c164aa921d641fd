"""Test helpers: products with stock, orders placed and paid through the real services."""

import itertools
from decimal import Decimal

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType
from kamen import crypto
from orders.gateways.sandbox import SandboxGateway, payment_payload, signed_body
from orders.models import SandboxPayment, SandboxPaymentStatus
from orders.services import place_order, record_payment_notification, start_payment

_numbers = itertools.count(1)


def make_product(*, product_type=ProductType.CARD_KEY, price="48.00", **fields) -> Product:
    number = next(_numbers)
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    defaults = {
        "category": category,
        "name": f"Steam 50 #{number}",
        "product_type": product_type,
        "retail_price": Decimal(price),
        "is_on_shelf": True,
        "max_quantity_per_order": 10,
    }
    defaults.update(fields)
    return Product.objects.create(**defaults)


def add_keys(product: Product, count: int, *, prefix: str = "KEY") -> list[CardKey]:
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    start = CardKey.objects.count()
    keys = []
    for number in range(start, start + count):
        secret = f"{prefix}-{product.pk}-{number}"
        key_id, blob = crypto.encrypt(secret)
        keys.append(
            CardKey(
                product=product,
                batch=batch,
                card_no=f"NO{number:06d}",
                secret_ciphertext=blob,
                key_id=key_id,
                fingerprint=crypto.blind_index(f"{prefix}|{product.pk}|{number}"),
            )
        )
    return CardKey.objects.bulk_create(keys)


def buy(product: Product, *, quantity: int = 1, contact: str = "buyer@example.com", **extra):
    return place_order(product=product, quantity=quantity, contact=contact, query_password="pass1234", **extra)


NOTIFY_URL = "http://testserver/pay/notify/sandbox/"


def start_sandbox(order) -> SandboxPayment:
    start_payment(order=order, notify_url=NOTIFY_URL, return_url="http://testserver/")
    return SandboxPayment.objects.get(out_trade_no=order.order_no)


def sandbox_notification(order, *, event_id: str | None = None, status: str = "succeeded", **overrides) -> tuple[bytes, dict]:
    """A correctly signed sandbox notification for ``order`` (paid), with optional tampering
    applied before signing."""
    payment = SandboxPayment.objects.filter(out_trade_no=order.order_no).first() or start_sandbox(order)
    if status == "succeeded" and payment.status == SandboxPaymentStatus.PENDING:
        from django.utils import timezone

        SandboxPayment.objects.filter(pk=payment.pk).update(status="succeeded", paid_at=timezone.now())
        payment.refresh_from_db()
    payload = payment_payload(payment, event_id=event_id or f"EVT-{order.order_no}", status=status)
    payload.update(overrides)
    return signed_body(payload)


def pay(order, **kwargs):
    body, headers = sandbox_notification(order, **kwargs)
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)


def pay_directly(order):
    """A signed sandbox notification for ``order`` without touching the sandbox's own books
    (for load tests, where only Kamen's side is measured)."""
    payload = {
        "app_id": SandboxGateway().app_id,
        "event_id": f"EVT-{order.order_no}",
        "out_trade_no": order.order_no,
        "trade_no": f"SBX-{order.order_no}",
        "amount": f"{order.total_amount:.2f}",
        "currency": "CNY",
        "status": "succeeded",
        "paid_at": None,
    }
    body, headers = signed_body(payload)
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)
