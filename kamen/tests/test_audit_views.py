"""The audit log in the console: readable by owner/finance/risk, never editable."""

import pytest
from django.urls import reverse

from catalog import services
from catalog.models import Category, ProductType
from kamen.models import AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def price_change(staff_user):
    category = Category.objects.create(name="游戏", slug="games")
    product = services.create_product(
        actor=staff_user, category=category, name="Steam 50", product_type=ProductType.CARD_KEY, retail_price="48.00"
    )
    services.set_product_price(product=product, actor=staff_user, retail_price="50.00")
    return AuditLogEntry.objects.get(action="catalog.product.price_change")


def test_owner_sees_who_changed_what_from_what_to_what(client, owner_user, price_change):
    client.force_login(owner_user)

    body = client.get(reverse("admin:kamen_auditlogentry_changelist")).content.decode()

    assert "operator" in body and "catalog.product.price_change" in body
    assert "48.00 → 50.00" in body


def test_filter_by_action(client, owner_user, price_change):
    client.force_login(owner_user)

    response = client.get(reverse("admin:kamen_auditlogentry_changelist"), {"action": "catalog.product.create"})

    assert list(response.context["cl"].result_list) == list(
        AuditLogEntry.objects.filter(action="catalog.product.create")
    )


def test_entries_cannot_be_added_changed_or_deleted(client, owner_user, price_change):
    client.force_login(owner_user)

    detail = client.get(reverse("admin:kamen_auditlogentry_change", args=[price_change.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.get(reverse("admin:kamen_auditlogentry_add")).status_code == 403
    assert (
        client.post(reverse("admin:kamen_auditlogentry_delete", args=[price_change.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditLogEntry.objects.filter(pk=price_change.pk).exists()


def test_operators_without_the_permission_cannot_read_it(client, staff_user, price_change):
    client.force_login(staff_user)

    assert client.get(reverse("admin:kamen_auditlogentry_changelist")).status_code == 403


def test_logins_are_audited(client, staff_user):
    client.post(reverse("admin:login"), {"username": "operator", "password": "kamen-test-pass"})

    assert AuditLogEntry.objects.filter(action="auth.login", actor=staff_user).exists()
