"""The supplier console: the secret is write-only and encrypted, edits are audited without it,
and bad input is refused with a clear message and nothing saved."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from catalog.models import Supplier, SupplierAlert, SupplierChannel
from catalog.services import create_supplier, save_supplier_channel, update_supplier
from catalog.services.suppliers import SECRET_ASSOCIATED_DATA
from catalog.suppliers import UnknownAdapter, client_for
from kamen import crypto
from kamen.models import AuditLogEntry

from .suppliers_support import add_channel, make_product, make_supplier

pytestmark = pytest.mark.django_db

SECRET = "Very-Secret-Signing-Key-42"


def supplier_form(**overrides):
    data = {
        "name": "联通货源",
        "adapter": "sandbox",
        "base_url": "http://127.0.0.1:8000/sandbox/supplier/",
        "app_id": "kamen-demo",
        "app_secret": SECRET,
        "is_active": "on",
        "low_balance_threshold": "100.00",
        "channels-TOTAL_FORMS": "0",
        "channels-INITIAL_FORMS": "0",
        "channels-MIN_NUM_FORMS": "0",
        "channels-MAX_NUM_FORMS": "1000",
    }
    return data | overrides


def test_the_secret_is_stored_encrypted_and_never_shown_back(client, owner_user):
    client.force_login(owner_user)

    response = client.post("/admin/catalog/supplier/add/", supplier_form())

    assert response.status_code == 302
    supplier = Supplier.objects.get()
    assert SECRET.encode() not in bytes(supplier.app_secret_ciphertext)
    assert crypto.decrypt(key_id=supplier.app_secret_key_id, blob=supplier.app_secret_ciphertext, associated_data=SECRET_ASSOCIATED_DATA) == SECRET
    for url in ("/admin/catalog/supplier/", f"/admin/catalog/supplier/{supplier.pk}/change/", "/admin/kamen/auditlogentry/"):
        page = client.get(url)
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
    audit = AuditLogEntry.objects.get(action="catalog.supplier.create")
    assert audit.actor == owner_user and audit.changes["app_secret"] == ["***", "***"]
    assert SECRET not in str(audit.changes)


def test_saving_without_a_secret_keeps_the_stored_one_and_audits_the_change(client, owner_user):
    client.force_login(owner_user)
    client.post("/admin/catalog/supplier/add/", supplier_form())
    supplier = Supplier.objects.get()

    response = client.post(f"/admin/catalog/supplier/{supplier.pk}/change/", supplier_form(app_secret="", low_balance_threshold="300.00"))

    assert response.status_code == 302
    supplier.refresh_from_db()
    assert client_for(supplier)._app_secret == SECRET
    audit = AuditLogEntry.objects.get(action="catalog.supplier.update")
    assert audit.changes == {"low_balance_threshold": ["100.00", "300.00"]}


def test_a_new_supplier_needs_a_secret(client, owner_user):
    client.force_login(owner_user)

    response = client.post("/admin/catalog/supplier/add/", supplier_form(app_secret=""))

    assert response.status_code == 200
    assert "密钥长度应为 8 到 200 个字符" in response.content.decode()
    assert not Supplier.objects.exists()


def test_channels_are_edited_inline_and_a_negative_cost_is_refused(client, owner_user):
    client.force_login(owner_user)
    product = make_product()
    supplier, _ = make_supplier("甲")
    channel_form = {
        "channels-TOTAL_FORMS": "1",
        "channels-0-product": str(product.pk),
        "channels-0-supplier_sku": "CM100",
        "channels-0-priority": "1",
        "channels-0-cost": "-1.00",
        "channels-0-is_active": "on",
        "app_id": supplier.app_id,
        "name": supplier.name,
        "app_secret": "",
    }

    refused = client.post(f"/admin/catalog/supplier/{supplier.pk}/change/", supplier_form(**channel_form))
    accepted = client.post(f"/admin/catalog/supplier/{supplier.pk}/change/", supplier_form(**channel_form | {"channels-0-cost": "96.50"}))

    assert refused.status_code == 200 and "进货价必须是不小于 0 的金额" in refused.content.decode()
    assert accepted.status_code == 302
    channel = SupplierChannel.objects.get()
    assert channel.cost == Decimal("96.50") and channel.supplier == supplier
    assert AuditLogEntry.objects.filter(action="catalog.supplier_channel.create", target_id=str(channel.pk)).exists()


def test_alerts_and_attempts_are_listed(client, owner_user):
    client.force_login(owner_user)
    supplier, _ = make_supplier("甲")
    SupplierAlert.objects.create(kind="low_balance", supplier=supplier, message="余额 10.00 低于预警值")

    alerts = client.get("/admin/catalog/supplieralert/")
    attempts = client.get("/admin/catalog/supplierrechargeattempt/")

    assert "余额 10.00 低于预警值" in alerts.content.decode()
    assert attempts.status_code == 200


def test_an_unknown_adapter_is_a_clear_error():
    with pytest.raises(ValidationError) as error:
        create_supplier(actor=None, name="x", adapter="alipay-magic", base_url="http://x.example/", app_id="a", app_secret=SECRET)

    assert "未知的对接类型“alipay-magic”" in error.value.message_dict["adapter"][0]
    assert not Supplier.objects.exists()


def test_a_stored_supplier_with_an_unknown_adapter_cannot_be_called():
    supplier, _ = make_supplier("甲")
    supplier.adapter = "gone"

    with pytest.raises(UnknownAdapter, match="unknown supplier adapter 'gone'"):
        client_for(supplier)


def test_bad_supplier_and_channel_values_change_nothing():
    product = make_product()
    supplier, _ = make_supplier("甲")
    channel = add_channel(product, supplier, "CM100", cost="96.00")

    with pytest.raises(ValidationError) as negative:
        save_supplier_channel(actor=None, channel=channel, cost="-5")
    with pytest.raises(ValidationError) as bad_ceiling:
        save_supplier_channel(actor=None, channel=channel, cost_ceiling="abc")
    with pytest.raises(ValidationError) as bad_url:
        update_supplier(supplier=supplier, actor=None, base_url="ftp://example.com/")
    with pytest.raises(ValidationError) as bad_app_id:
        update_supplier(supplier=supplier, actor=None, app_id="应用 1")

    assert "cost" in negative.value.message_dict and "cost_ceiling" in bad_ceiling.value.message_dict
    assert "base_url" in bad_url.value.message_dict and "app_id" in bad_app_id.value.message_dict
    channel.refresh_from_db()
    supplier.refresh_from_db()
    assert channel.cost == Decimal("96.00") and channel.cost_ceiling is None
    assert supplier.base_url.startswith("http://testserver")


def test_a_staff_member_without_the_permission_cannot_change_a_supplier(staff_user):
    supplier, _ = make_supplier("甲")
    from django.contrib.auth.models import Permission

    staff_user.groups.clear()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_supplier"))

    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        update_supplier(supplier=supplier, actor=staff_user, name="改名")


def test_open_supplier_alerts_show_on_the_console_home(client, staff_user):
    supplier, _ = make_supplier("甲")
    SupplierAlert.objects.create(kind="low_balance", supplier=supplier, message="货源“甲”余额 10.00 低于预警值")
    SupplierAlert.objects.create(kind="sync_failed", supplier=supplier, message="早已解决的问题", resolved_at="2026-01-01T00:00:00Z")
    client.force_login(staff_user)

    page = client.get("/admin/").content.decode()

    assert "货源“甲”余额 10.00 低于预警值" in page
    assert "早已解决的问题" not in page


def test_the_sandbox_account_secret_is_write_only_too(client, owner_user):
    from catalog.models import SandboxAccount
    from catalog.sandbox_services import account_secret

    client.force_login(owner_user)
    form = {"name": "演练", "app_id": "drill", "balance": "100.00", "is_active": "on", "latency_ms": "0", "failure_rate": "0.2", "pending_rate": "0"}

    refused = client.post("/admin/catalog/sandboxaccount/add/", form | {"app_secret": "short"})
    created = client.post("/admin/catalog/sandboxaccount/add/", form | {"app_secret": SECRET})

    assert refused.status_code == 200 and "密钥至少 16 个字符" in refused.content.decode()
    assert created.status_code == 302
    account = SandboxAccount.objects.get()
    assert account_secret(account) == SECRET and account.failure_rate == Decimal("0.200")
    assert SECRET not in client.get(f"/admin/catalog/sandboxaccount/{account.pk}/change/").content.decode()
    assert AuditLogEntry.objects.get(action="catalog.sandbox_account.create").changes["app_secret"] == ["***", "***"]


def test_the_sync_action_reports_what_it_found(client, owner_user, monkeypatch):
    from .suppliers_support import RecordingTransport

    monkeypatch.setattr("catalog.suppliers.UrllibTransport.__call__", RecordingTransport().__call__)
    supplier, _ = make_supplier("甲", balance="321.00")
    client.force_login(owner_user)

    response = client.post("/admin/catalog/supplier/", {"action": "sync_now", "_selected_action": [supplier.pk]}, follow=True)

    assert "余额 321.00" in response.content.decode()
    supplier.refresh_from_db()
    assert supplier.balance == Decimal("321.00")


def test_a_supplier_on_this_site_is_stored_as_a_path_and_called_at_site_url(client, owner_user, settings):
    settings.SITE_URL = "https://shop.example.com"
    client.force_login(owner_user)

    response = client.post("/admin/catalog/supplier/add/", supplier_form(base_url="/sandbox/supplier/"))

    assert response.status_code == 302
    supplier = Supplier.objects.get()
    assert supplier.base_url == "/sandbox/supplier/"
    assert client_for(supplier).base_url == "https://shop.example.com/sandbox/supplier/"


def test_a_protocol_relative_or_bare_address_is_refused(owner_user):
    for bad in ("//evil.example/x/", "sandbox/supplier/", "/sandbox/ supplier/"):
        with pytest.raises(ValidationError) as raised:
            create_supplier(actor=None, name="x", adapter="sandbox", base_url=bad, app_id="a", app_secret=SECRET)
        assert "base_url" in raised.value.message_dict
    assert Supplier.objects.count() == 0
