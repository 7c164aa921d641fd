"""The demo suppliers: loaded twice without duplicates, and the demo top-up really goes through."""

import pytest

from catalog.demo import load_catalog_demo
from catalog.demo_suppliers import TOP_UP_PRODUCT, load_supplier_demo
from catalog.models import (
    Product,
    SandboxAccount,
    SandboxOrder,
    SandboxSku,
    Supplier,
    SupplierChannel,
)
from catalog.services import TopUpStatus, send_top_up, sync_all_suppliers

from .suppliers_support import RecordingTransport

pytestmark = pytest.mark.django_db


def test_demo_suppliers_are_idempotent_and_work_end_to_end(owner_user, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    settings.SANDBOX_SUPPLIER_URL = ""
    monkeypatch.setenv("PORT", "8123")
    load_catalog_demo(owner=owner_user)

    load_supplier_demo()
    load_supplier_demo()

    product = Product.objects.get(name=TOP_UP_PRODUCT)
    assert SandboxAccount.objects.count() == 2 and SandboxSku.objects.count() == 2
    assert Supplier.objects.count() == 2
    assert list(SupplierChannel.objects.filter(product=product).values_list("priority", flat=True)) == [1, 2]
    assert all(url == "http://127.0.0.1:8123/sandbox/supplier/" for url in Supplier.objects.values_list("base_url", flat=True))

    SandboxAccount.objects.update(latency_ms=0, failure_rate=0)
    outcome = send_top_up(product=product, reference="DEMO-1", target="13800138000", quantity=1, transport=RecordingTransport())
    reports = sync_all_suppliers(transport=RecordingTransport())

    assert outcome.status == TopUpStatus.SUCCEEDED and SandboxOrder.objects.count() == 1
    assert [report.error for report in reports] == ["", ""]
