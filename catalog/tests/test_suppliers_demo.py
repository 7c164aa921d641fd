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
from catalog.suppliers import client_for

from .suppliers_support import RecordingTransport

pytestmark = pytest.mark.django_db


def test_demo_suppliers_are_idempotent_and_work_end_to_end(owner_user, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    settings.SANDBOX_SUPPLIER_URL = ""
    settings.SITE_URL = "https://shop.example.com"
    load_catalog_demo(owner=owner_user)

    load_supplier_demo()
    load_supplier_demo()

    product = Product.objects.get(name=TOP_UP_PRODUCT)
    assert SandboxAccount.objects.count() == 2 and SandboxSku.objects.count() == 2
    assert Supplier.objects.count() == 2
    assert list(SupplierChannel.objects.filter(product=product).values_list("priority", flat=True)) == [1, 2]
    # A path on the site, not one host's address; called at the site's public address.
    assert all(url == "/sandbox/supplier/" for url in Supplier.objects.values_list("base_url", flat=True))
    assert client_for(Supplier.objects.first()).base_url == "https://shop.example.com/sandbox/supplier/"

    SandboxAccount.objects.update(latency_ms=0, failure_rate=0)
    outcome = send_top_up(product=product, reference="DEMO-1", target="13800138000", quantity=1, transport=RecordingTransport())
    reports = sync_all_suppliers(transport=RecordingTransport())

    assert outcome.status == TopUpStatus.SUCCEEDED and SandboxOrder.objects.count() == 1
    assert [report.error for report in reports] == ["", ""]


def test_a_demo_supplier_stored_with_one_hosts_address_is_moved_to_the_site_path(owner_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SANDBOX_SUPPLIER_URL = "http://10.0.0.5:8000/sandbox/supplier/"
    load_catalog_demo(owner=owner_user)
    load_supplier_demo()
    settings.SANDBOX_SUPPLIER_URL = ""

    load_supplier_demo()

    assert set(Supplier.objects.values_list("base_url", flat=True)) == {"/sandbox/supplier/"}
