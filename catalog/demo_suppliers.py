"""Demo suppliers: two sandbox accounts served by the running Kamen itself, two Supplier rows
pointing at them, and the mobile top-up product sourced through both. Idempotent.

The suppliers store the sandbox as a path on this site, resolved against SITE_URL when called
(SANDBOX_SUPPLIER_URL, a full URL, wins).
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from .models import Product, SandboxAccount, SandboxSku, Supplier, SupplierChannel
from .sandbox_services import account_secret, create_sandbox_account

TOP_UP_PRODUCT = "中国移动话费直充 100 元"
SANDBOX_SUPPLIER_PATH = "/sandbox/supplier/"
# (supplier name, sandbox app id, balance, latency ms, failure rate, sku, sku price, stock, priority)
DEMO_SUPPLIERS = [
    ("沙箱货源·快充", "kamen-demo-fast", "5000.00", 150, "0.10", "CMCC-100-FAST", "97.00", None, 1),
    ("沙箱货源·备用", "kamen-demo-backup", "800.00", 400, "0.00", "CMCC-100-BACKUP", "97.80", 200, 2),
]


def sandbox_base_url() -> str:
    """A path on this site, resolved against SITE_URL when called (kamen.site), so the stored
    address follows the site's public address instead of the host that loaded the demo."""
    return settings.SANDBOX_SUPPLIER_URL or SANDBOX_SUPPLIER_PATH


def load_supplier_demo() -> None:
    from .services import create_supplier, save_supplier_channel, update_supplier

    product = Product.objects.filter(name=TOP_UP_PRODUCT).first()
    base_url = sandbox_base_url()
    with transaction.atomic():
        for name, app_id, balance, latency, failure_rate, sku, price, stock, priority in DEMO_SUPPLIERS:
            account = SandboxAccount.objects.filter(app_id=app_id).first()
            if account is None:
                account = create_sandbox_account(name=name, app_id=app_id, app_secret=secrets.token_urlsafe(32), balance=Decimal(balance))
                account.latency_ms, account.failure_rate = latency, Decimal(failure_rate)
                account.save(update_fields=["latency_ms", "failure_rate"])
            SandboxSku.objects.get_or_create(sku=sku, defaults={"name": f"{TOP_UP_PRODUCT}（{name}）", "price": Decimal(price), "stock": stock})
            supplier = Supplier.objects.filter(name=name).first()
            if supplier is None:
                supplier = create_supplier(
                    actor=None, name=name, adapter="sandbox", base_url=base_url, app_id=app_id,
                    app_secret=account_secret(account), low_balance_threshold=Decimal("1000.00"),
                )
            elif supplier.base_url != base_url:
                # An address stored by an older demo (one host's): replace it with the path.
                update_supplier(supplier=supplier, actor=None, base_url=base_url)
            if product is not None and not SupplierChannel.objects.filter(product=product, supplier=supplier).exists():
                save_supplier_channel(actor=None, product=product, supplier=supplier, supplier_sku=sku, priority=priority, cost=price)
