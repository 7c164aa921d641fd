"""Shared builders for the supplier tests: a direct-top-up product, sandbox accounts, and
suppliers wired to them through the in-process transport (or real HTTP)."""

from decimal import Decimal

from catalog.models import (
    Category,
    Product,
    ProductType,
    RechargeTargetRule,
    SandboxAccount,
    SandboxSku,
    SupplierChannel,
)
from catalog.sandbox_services import create_sandbox_account
from catalog.services import create_supplier, save_supplier_channel
from catalog.suppliers import InProcessTransport, TransportResponse, TransportTimeout

SECRET = "sandbox-secret-for-tests-0123456789"


def make_product(*, retail="100.00", ceiling=None) -> Product:
    category, _ = Category.objects.get_or_create(slug="mobile", defaults={"name": "话费充值"})
    return Product.objects.create(
        category=category,
        name=f"话费直充 {Product.objects.count()}",
        product_type=ProductType.DIRECT_RECHARGE,
        retail_price=Decimal(retail),
        supplier_cost_ceiling=Decimal(ceiling) if ceiling else None,
        recharge_target_rule=RechargeTargetRule.MOBILE,
        is_on_shelf=True,
    )


def make_sku(sku, price="97.00", stock=None, out_of_stock=False) -> SandboxSku:
    return SandboxSku.objects.create(sku=sku, name=sku, price=Decimal(price), stock=stock, is_out_of_stock=out_of_stock)


def make_supplier(name, *, balance="1000.00", failure_rate="0", pending_rate="0", base_url="http://testserver/sandbox/supplier/", threshold=None):
    """A sandbox account and the Supplier row that points at it, sharing one secret."""
    app_id = f"app-{SandboxAccount.objects.count() + 1}"
    account = create_sandbox_account(name=name, app_id=app_id, app_secret=SECRET, balance=Decimal(balance))
    account.failure_rate, account.pending_rate = Decimal(failure_rate), Decimal(pending_rate)
    account.save()
    supplier = create_supplier(
        actor=None, name=name, adapter="sandbox", base_url=base_url, app_id=app_id, app_secret=SECRET,
        low_balance_threshold=threshold,
    )
    return supplier, account


def add_channel(product, supplier, sku, *, priority=10, cost="97.00", ceiling=None) -> SupplierChannel:
    return save_supplier_channel(
        actor=None, product=product, supplier=supplier, supplier_sku=sku, priority=priority, cost=cost, cost_ceiling=ceiling
    )


class RecordingTransport:
    """The in-process transport, with a log of operations and the power to lose answers."""

    def __init__(self, *, lose_answers_to=()):
        self.inner = InProcessTransport()
        self.calls: list[str] = []
        self.lose_answers_to = set(lose_answers_to)

    def __call__(self, *, url, body, headers, timeout) -> TransportResponse:
        operation = url.split("/sandbox/supplier/", 1)[1].strip("/")
        self.calls.append(operation)
        response = self.inner(url=url, body=body, headers=headers, timeout=timeout)
        if operation in self.lose_answers_to:
            raise TransportTimeout("read timed out (answer lost after the supplier processed it)")
        return response

    def count(self, operation) -> int:
        return self.calls.count(operation)
