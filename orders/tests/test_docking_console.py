"""The docking console (对接管理): staff add and approve a site, top up its prepaid balance,
issue a key whose secret is shown once, revoke it — each behind its permission."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from commissions.services.prepaid import prepaid_balance
from distribution.docking.models import ApiKey, DockingSite, DockingSiteStatus
from distribution.tests.factories import DistributorFactory
from kamen.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def _staff(django_user_model, role):
    user = django_user_model.objects.create_user(username=f"staff-{role}", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def site():
    return DockingSite.objects.create(distributor=DistributorFactory(), name="下游站", contact_email="d@example.com")


def _login(client, user):
    client.force_login(user)
    session = client.session
    session["kamen_2fa_user"] = user.pk
    session.save()
    return client


def test_an_operator_approves_a_site_by_the_list_action(client, django_user_model, site):
    operator = _login(client, _staff(django_user_model, "operator"))

    operator.post("/admin/distribution/dockingsite/", {"action": "approve_selected", "_selected_action": [site.pk]})

    site.refresh_from_db()
    assert site.status == DockingSiteStatus.ACTIVE
    assert AuditLogEntry.objects.filter(action="docking.site_approved").exists()


def test_finance_tops_up_the_prepaid_balance_once_per_reference(client, django_user_model, site):
    finance = _login(client, _staff(django_user_model, "finance"))
    url = f"/admin/distribution/dockingsite/{site.pk}/top-up/"

    finance.post(url, {"amount": "300.00", "reference": "BANK-1"})
    finance.post(url, {"amount": "300.00", "reference": "BANK-1"})

    assert prepaid_balance(site.distributor_id) == Decimal("300.00")


def test_an_operator_may_not_top_up(client, django_user_model, site):
    operator = _login(client, _staff(django_user_model, "operator"))

    response = operator.post(
        f"/admin/distribution/dockingsite/{site.pk}/top-up/", {"amount": "300.00", "reference": "X"}
    )

    assert response.status_code == 403
    assert prepaid_balance(site.distributor_id) == Decimal("0.00")


def test_a_new_keys_secret_is_shown_once_and_never_on_the_key_pages(client, django_user_model, site):
    operator = _login(client, _staff(django_user_model, "operator"))

    made = operator.post(
        f"/admin/distribution/dockingsite/{site.pk}/issue-key/", {"label": "ERP", "scopes": ["catalog:read"]}
    )
    key = ApiKey.objects.get(site=site)
    secret = made.context["secret"]
    listing = operator.get("/admin/distribution/apikey/").content.decode()
    detail = operator.get(f"/admin/distribution/apikey/{key.pk}/change/").content.decode()
    site_page = operator.get(f"/admin/distribution/dockingsite/{site.pk}/change/").content.decode()

    assert secret and secret in made.content.decode()
    assert key.key_id in listing
    assert all(secret not in page for page in (listing, detail, site_page))


def test_revoking_a_key_from_the_list(client, django_user_model, site):
    operator = _login(client, _staff(django_user_model, "operator"))
    operator.post(f"/admin/distribution/dockingsite/{site.pk}/issue-key/", {"scopes": ["orders:read"]})
    key = ApiKey.objects.get(site=site)

    operator.post("/admin/distribution/apikey/", {"action": "revoke_selected", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert not key.is_active and key.revoked_at is not None
