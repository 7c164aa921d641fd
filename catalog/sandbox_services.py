"""Writes of the sandbox supplier: accounts, SKUs, its own order book, price drift.

The sandbox is a separate "company" that happens to live in Kamen's database: it keeps its own
books (balance, stock, orders) under its own locks, exactly like an upstream would, so the
supplier services can be exercised end to end without knowing it is local.
"""

import random
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kamen import crypto
from kamen.money import FEN

from .models import SandboxAccount, SandboxOrder, SandboxOrderStatus, SandboxSku

SECRET_ASSOCIATED_DATA = b"sandbox-secret"


class SandboxError(Exception):
    """A business refusal, answered as {"ok": false, "error": {code, message}}."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def account_secret(account: SandboxAccount) -> str:
    return crypto.decrypt(key_id=account.app_secret_key_id, blob=account.app_secret_ciphertext, associated_data=SECRET_ASSOCIATED_DATA)


def set_account_secret(account: SandboxAccount, secret: str) -> None:
    if not secret or len(secret) < 16:
        raise ValidationError({"app_secret": [_("密钥至少 16 个字符")]})
    account.app_secret_key_id, account.app_secret_ciphertext = crypto.encrypt(secret, associated_data=SECRET_ASSOCIATED_DATA)


def create_sandbox_account(*, name: str, app_id: str, app_secret: str, balance: Decimal = Decimal("0.00")) -> SandboxAccount:
    account = SandboxAccount(name=name, app_id=app_id, balance=balance)
    set_account_secret(account, app_secret)
    account.full_clean()
    account.save()
    return account


@dataclass(frozen=True)
class PlacedOrder:
    order: SandboxOrder
    created: bool


def _new_order_no() -> str:
    return "SB" + timezone.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(4).upper()


def place_sandbox_order(*, account: SandboxAccount, sku: str, target: str, quantity: int, out_order_no: str) -> PlacedOrder:
    """Idempotent per (account, out_order_no): a repeat returns the first order, charged once.

    The account row is locked first, so two requests with the same out_order_no queue behind
    each other and the second finds the first's order."""
    if not out_order_no or len(out_order_no) > 80:
        raise SandboxError("bad_request", "out_order_no is required (at most 80 characters)")
    if not target or len(target) > 120:
        raise SandboxError("bad_request", "target is required (at most 120 characters)")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise SandboxError("bad_request", "quantity must be a whole number of at least 1")
    with transaction.atomic():
        locked = SandboxAccount.objects.select_for_update().get(pk=account.pk)
        existing = SandboxOrder.objects.filter(account=locked, out_order_no=out_order_no).first()
        if existing is not None:
            if (existing.sku, existing.target, existing.quantity) != (sku, target, quantity):
                raise SandboxError("out_order_no_conflict", "out_order_no was already used for a different order", 409)
            return PlacedOrder(existing, False)
        item = SandboxSku.objects.select_for_update().filter(sku=sku).first()
        if item is None:
            raise SandboxError("unknown_sku", f"unknown sku {sku!r}")
        if not item.is_in_stock or (item.stock is not None and item.stock < quantity):
            raise SandboxError("out_of_stock", f"sku {sku} is out of stock")
        amount = (item.price * quantity).quantize(FEN)
        if random.random() < float(locked.failure_rate):
            order = SandboxOrder.objects.create(
                account=locked, out_order_no=out_order_no, order_no=_new_order_no(), sku=sku, target=target,
                quantity=quantity, amount=amount, status=SandboxOrderStatus.FAILED, message="运营商系统维护（模拟失败）",
            )
            return PlacedOrder(order, True)
        if locked.balance < amount:
            raise SandboxError("insufficient_balance", f"balance {locked.balance} is below the order amount {amount}")
        locked.balance -= amount
        locked.save(update_fields=["balance"])
        if item.stock is not None:
            item.stock -= quantity
            item.save(update_fields=["stock", "updated_at"])
        is_pending = random.random() < float(locked.pending_rate)
        order = SandboxOrder.objects.create(
            account=locked, out_order_no=out_order_no, order_no=_new_order_no(), sku=sku, target=target,
            quantity=quantity, amount=amount,
            status=SandboxOrderStatus.PROCESSING if is_pending else SandboxOrderStatus.SUCCESS,
            message="充值处理中" if is_pending else "充值成功",
        )
    return PlacedOrder(order, True)


def query_sandbox_order(*, account: SandboxAccount, out_order_no: str) -> SandboxOrder:
    """A processing order settles (successfully: it was already charged) the first time it is asked about."""
    with transaction.atomic():
        order = SandboxOrder.objects.select_for_update().filter(account=account, out_order_no=out_order_no).first()
        if order is None:
            raise SandboxError("order_not_found", f"no order with out_order_no {out_order_no!r}", 404)
        if order.status == SandboxOrderStatus.PROCESSING:
            order.status, order.message = SandboxOrderStatus.SUCCESS, "充值成功"
            order.save(update_fields=["status", "message"])
    return order


def drift_sandbox_prices(*, max_percent: Decimal = Decimal(5), rng: random.Random | None = None) -> list[tuple[SandboxSku, Decimal, Decimal]]:
    """Move every SKU's price by up to ±max_percent, like an upstream repricing overnight."""
    rng = rng or random.Random()
    changed = []
    with transaction.atomic():
        for item in SandboxSku.objects.select_for_update().order_by("pk"):
            factor = Decimal(1) + Decimal(str(rng.uniform(-float(max_percent), float(max_percent)))) / 100
            new_price = max(FEN, (item.price * factor).quantize(FEN))
            if new_price != item.price:
                changed.append((item, item.price, new_price))
                item.price = new_price
                item.save(update_fields=["price", "updated_at"])
    return changed
