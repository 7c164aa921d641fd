"""The blacklist in the console: add through the service, CSV import and export."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from riskcontrol.models import BlacklistEntry

pytestmark = pytest.mark.django_db


def test_staff_add_a_network_and_bad_input_changes_nothing(client, risk_staff):
    client.force_login(risk_staff)
    url = reverse("admin:riskcontrol_blacklistentry_add")

    bad = client.post(url, {"kind": "ip", "value": "10.0.0.300/8", "reason": "x"})
    good = client.post(
        url, {"kind": "ip", "value": "10.1.2.3/8", "reason": "内网", "valid_days": "30"}
    )

    assert bad.status_code == 200 and "不是有效的 IP" in bad.content.decode()
    assert good.status_code == 302
    entry = BlacklistEntry.objects.get()
    assert entry.display_value == "10.0.0.0/8" and entry.expires_at is not None


def test_import_and_export_in_the_console(client, risk_staff):
    client.force_login(risk_staff)
    upload = SimpleUploadedFile(
        "list.csv", "kind,value,reason\ncontact,13812345678,刷单\n".encode(), "text/csv"
    )

    response = client.post(
        reverse("admin:riskcontrol_blacklistentry_import"), {"file": upload}
    )
    exported = client.get(reverse("admin:riskcontrol_blacklistentry_export"))
    listing = client.get(reverse("admin:riskcontrol_blacklistentry_changelist"))

    assert response.status_code == 302
    assert "138****5678" in exported.content.decode("utf-8-sig")
    assert listing.status_code == 200 and "138****5678" in listing.content.decode()


def test_an_import_with_a_bad_row_reports_it_and_adds_nothing(client, risk_staff):
    client.force_login(risk_staff)
    upload = SimpleUploadedFile(
        "list.csv", b"ip,10.0.0.0/8,a\nip,<b>bad</b>,b\n", "text/csv"
    )

    response = client.post(
        reverse("admin:riskcontrol_blacklistentry_import"), {"file": upload}
    )

    body = response.content.decode()
    assert "第 2 行" in body and "<b>bad</b>" not in body
    assert not BlacklistEntry.objects.exists()
