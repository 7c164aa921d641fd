"""Helpers for the open API's tests: an approved docking site with a key and a prepaid
balance, and a client that signs its requests like a docking site would."""

import json
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import Group
from django.test import Client

from commissions.services.prepaid import top_up_prepaid
from distribution.docking.models import ApiKey, ApiScope, DockingSite
from distribution.docking.services import apply_for_docking, approve_docking_site, create_api_key
from distribution.tests.factories import DistributorFactory, GradeFactory
from kamen import api_signing

ALL_SCOPES = list(ApiScope.values)


@dataclass
class Docked:
    site: DockingSite
    key: ApiKey
    secret: str


def owner(django_user_model, name="dock-owner"):
    user = django_user_model.objects.create_user(username=name, password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="owner"))
    return user


def docked_site(
    *, staff, prepaid="1000.00", credit_limit="0", scopes=ALL_SCOPES, discount_bp=8000, name="下游站", ip_allowlist=()
) -> Docked:
    distributor = DistributorFactory(grade=GradeFactory(wholesale_discount_bp=discount_bp))
    site = apply_for_docking(
        distributor=distributor, name=name, contact_email="dock@example.com", ip_allowlist=ip_allowlist
    )
    site = approve_docking_site(site=site, actor=staff, credit_limit=credit_limit)
    if Decimal(prepaid) > 0:
        top_up_prepaid(distributor_id=distributor.pk, amount=prepaid, reference=f"test-{site.pk}", actor=staff)
    key, secret = create_api_key(site=site, scopes=scopes, label="test", actor=staff)
    return Docked(site=site, key=key, secret=secret)


def signed_call(
    client: Client,
    docked: Docked,
    method: str,
    url: str,
    payload=None,
    *,
    raw_body: bytes | None = None,
    secret: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
    headers_override=None,
    **extra,
):
    """Send ``method url`` signed with the site's key (or ``secret``); returns the response."""
    body = raw_body if raw_body is not None else (json.dumps(payload).encode() if payload is not None else b"")
    headers = api_signing.signed_headers(
        key_id=docked.key.key_id,
        secret=secret or docked.secret,
        method=method,
        url=url,
        body=body,
        now=now,
        nonce=nonce,
    )
    headers.update(headers_override or {})
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    meta.update(extra)
    if method == "GET":
        return client.get(url, **meta)
    return client.generic(method, url, data=body, content_type="application/json", **meta)
