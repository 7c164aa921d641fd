"""The scheduled price and balance sync: history, stock, off-shelf when cost reaches price, and
alerts that are raised once and resolved when the condition clears."""

from decimal import Decimal

import pytest
from django.core import mail

from catalog.models import (
    SandboxAccount,
    SandboxSku,
    Supplier,
    SupplierAlert,
    SupplierPriceChange,
)
from catalog.services import sync_all_suppliers, sync_supplier
from catalog.tasks import sync_supplier_prices_task
from kamen.models import AuditLogEntry

from .suppliers_support import (
    RecordingTransport,
    add_channel,
    make_product,
    make_sku,
    make_supplier,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings):
    settings.MERCHANT_ALERT_EMAILS = ["boss@example.com"]
    product = make_product(retail="100.00")
    make_sku("CM100-A", price="96.00")
    supplier, account = make_supplier("甲", balance="1000.00", threshold="200.00")
    channel = add_channel(product, supplier, "CM100-A", cost="96.00")
    return product, supplier, account, channel


def test_a_price_change_is_recorded_and_the_cost_updated(setup):
    _, supplier, _, channel = setup
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("97.50"))

    report = sync_supplier(supplier=supplier, transport=RecordingTransport())

    channel.refresh_from_db()
    supplier.refresh_from_db()
    assert report.price_changes == 1 and channel.cost == Decimal("97.50")
    change = SupplierPriceChange.objects.get()
    assert (change.old_cost, change.new_cost) == (Decimal("96.00"), Decimal("97.50"))
    assert supplier.balance == Decimal("1000.00") and supplier.balance_synced_at is not None
    assert not report.taken_off_shelf and not mail.outbox


def test_stock_follows_the_supplier(setup):
    _, supplier, _, channel = setup
    SandboxSku.objects.filter(sku="CM100-A").update(is_out_of_stock=True)

    sync_supplier(supplier=supplier, transport=RecordingTransport())
    channel.refresh_from_db()
    assert channel.is_in_stock is False

    SandboxSku.objects.filter(sku="CM100-A").update(is_out_of_stock=False)
    sync_supplier(supplier=supplier, transport=RecordingTransport())
    channel.refresh_from_db()
    assert channel.is_in_stock is True


def test_cost_reaching_the_price_takes_the_product_off_the_shelf_and_alerts_once(setup):
    product, supplier, _, _ = setup
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("100.00"))

    first = sync_supplier(supplier=supplier, transport=RecordingTransport())
    second = sync_supplier(supplier=supplier, transport=RecordingTransport())

    product.refresh_from_db()
    assert product.is_on_shelf is False and "100.00" in product.off_shelf_reason
    assert first.taken_off_shelf == [product] and second.taken_off_shelf == []
    alert = SupplierAlert.objects.get(kind="cost_reached_price")
    assert alert.product == product and alert.resolved_at is None and alert.emailed_at is not None
    assert len(mail.outbox) == 1 and product.name in mail.outbox[0].subject
    audit = AuditLogEntry.objects.get(action="catalog.product.shelf_change", target_id=str(product.pk))
    assert audit.actor_name == "system" and audit.changes["is_on_shelf"] == [True, False]


def test_the_alert_resolves_when_the_cost_drops_again(setup):
    _, supplier, _, _ = setup
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("120.00"))
    sync_supplier(supplier=supplier, transport=RecordingTransport())

    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("95.00"))
    sync_supplier(supplier=supplier, transport=RecordingTransport())

    assert SupplierAlert.objects.get(kind="cost_reached_price").resolved_at is not None


def test_a_cheaper_second_channel_keeps_the_product_on_sale(setup):
    product, _, _, _ = setup
    make_sku("CM100-B", price="98.00")
    second, _ = make_supplier("乙")
    add_channel(product, second, "CM100-B", priority=20, cost="98.00")
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("101.00"))

    sync_all_suppliers(transport=RecordingTransport())

    product.refresh_from_db()
    assert product.is_on_shelf is True
    assert not SupplierAlert.objects.filter(kind="cost_reached_price").exists()


def test_a_low_balance_alerts_once_and_resolves_after_a_top_up(setup):
    _, supplier, account, _ = setup
    SandboxAccount.objects.filter(pk=account.pk).update(balance=Decimal("150.00"))

    sync_supplier(supplier=supplier, transport=RecordingTransport())
    sync_supplier(supplier=supplier, transport=RecordingTransport())
    alert = SupplierAlert.objects.get(kind="low_balance")
    assert alert.supplier == supplier and "150.00" in alert.message
    assert len(mail.outbox) == 1

    SandboxAccount.objects.filter(pk=account.pk).update(balance=Decimal("5000.00"))
    sync_supplier(supplier=supplier, transport=RecordingTransport())
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_supplier_that_cannot_be_reached_raises_a_sync_alert(setup):
    _, supplier, _, channel = setup
    Supplier.objects.filter(pk=supplier.pk).update(base_url="http://127.0.0.1:9/sandbox/supplier/")
    supplier.refresh_from_db()

    report = sync_supplier(supplier=supplier)

    supplier.refresh_from_db()
    channel.refresh_from_db()
    assert report.error and supplier.last_sync_error
    assert SupplierAlert.objects.filter(kind="sync_failed", supplier=supplier, resolved_at__isnull=True).count() == 1
    assert channel.cost == Decimal("96.00")


def test_the_scheduled_task_syncs_every_active_supplier(setup, monkeypatch):
    _, _, _, channel = setup
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("95.00"))
    monkeypatch.setattr("catalog.suppliers.UrllibTransport.__call__", RecordingTransport().__call__)

    sync_supplier_prices_task()

    channel.refresh_from_db()
    assert channel.cost == Decimal("95.00")


def test_a_product_with_stale_settings_still_goes_off_the_shelf(setup):
    product, supplier, _, _ = setup
    type(product).objects.filter(pk=product.pk).update(recharge_target_rule="")
    SandboxSku.objects.filter(sku="CM100-A").update(price=Decimal("100.00"))

    sync_supplier(supplier=supplier, transport=RecordingTransport())

    product.refresh_from_db()
    assert product.is_on_shelf is False
    assert AuditLogEntry.objects.filter(action="catalog.product.shelf_change", target_id=str(product.pk)).count() == 1
