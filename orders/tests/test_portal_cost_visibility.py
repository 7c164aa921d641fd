"""A grade without ``may_see_floor_price`` never sees a cost figure in the agent portal: its own
or anyone's 拿货价, a product's cost, a batch cost, a supplier price, a commission base
computed from a margin. Every portal page is walked (every ``agent/`` URL of every app)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from catalog.models import CardKeyBatch
from commissions.models import Commission, CommissionKind
from distribution.models import Distributor, GradeProductPrice, SubStore
from distribution.tests.factories import DistributorFactory, GradeFactory, ProductFactory
from orders.models import Order, OrderStatus

pytestmark = pytest.mark.django_db

PLANTED = "12.34"


def _agent_routes():
    """(name with namespace, route) of every GET page under /agent/."""

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = entry.namespace or namespace
                yield from walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern) and entry.name:
                name = f"{namespace}:{entry.name}" if namespace else entry.name
                yield name, prefix + str(entry.pattern)

    return [
        (name, route)
        for name, route in walk(get_resolver().url_patterns, "", None)
        if route.startswith("agent/") and not route.startswith(("agent/login", "agent/logout", "agent/join"))
    ]


@pytest.fixture
def world():
    grade = GradeFactory(may_open_sub_store=True, may_see_floor_price=False)
    product = ProductFactory(cost_price=Decimal(PLANTED), retail_price=Decimal("30.00"))
    GradeProductPrice.objects.create(grade=grade, product=product, unit_cost=Decimal(PLANTED))
    CardKeyBatch.objects.create(product=product, unit_cost=Decimal(PLANTED), key_count=1)
    me = DistributorFactory(grade=grade)
    child = DistributorFactory(grade=grade, parent=Distributor.objects.get(pk=me.pk))
    me = Distributor.objects.get(pk=me.pk)
    SubStore.objects.create(distributor=me, name="我的小店", slug="my-store", is_open=True)
    now = timezone.now()
    order = Order.objects.create(
        order_no="K9000000001",
        status=OrderStatus.COMPLETED,
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=Decimal("20.00"),
        total_amount=Decimal("20.00"),
        paid_amount=Decimal("20.00"),
        paid_at=now,
        contact="13812345678",
        contact_kind="mobile",
        query_password_hash="x",
        distributor_id=child.pk,
        attribution={},
        expires_at=now + timedelta(minutes=15),
    )
    for kind, beneficiary in ((CommissionKind.PRICE_DIFFERENCE, me), (CommissionKind.LEVEL, me)):
        Commission.objects.create(
            order=order,
            beneficiary=beneficiary,
            kind=kind,
            level=1,
            rule_description=f"分站差价：售价 ¥20.00 − 拿货价 ¥{PLANTED}",
            base_amount=Decimal(PLANTED),
            amount=Decimal("7.66"),
            available_at=now,
        )
    return {"grade": grade, "me": me, "child": child, "order": order, "product": product}


def _url(name, route, world):
    """The page's URL with the world's objects; a new parameter name fails here, loudly."""
    today = timezone.localdate()
    values = {
        "pk": world["child"].pk,
        "order_no": world["order"].order_no,
        "product_pk": world["product"].pk,
        "code": world["me"].invite_code,
        "slug": "my-store",
        "purchase_no": "S-none",
        "year": today.year,
        "month": today.month,
    }
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    assert set(names) <= set(values), f"{name}: give the walk a value for {set(names) - set(values)}"
    return reverse(name, kwargs={key: values[key] for key in names})


def _pages(client, world):
    pages = {}
    for name, route in _agent_routes():
        response = client.get(_url(name, route, world))
        if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
            pages[name] = response.content.decode()
    return pages


def test_every_portal_page_hides_cost_figures_from_a_grade_without_floor_price(client, world):
    client.force_login(world["me"].user)

    pages = _pages(client, world)

    assert {
        "distribution:agent-dashboard",
        "distribution:agent-team-member",
        "distribution:agent-order-detail",
        "distribution:agent-store",
        "commissions:wallet",
        "commissions:statements",
        "commissions:withdrawal-create",
    } <= set(pages)
    assert {name: PLANTED in html for name, html in pages.items()} == {name: False for name in pages}


def test_the_same_walk_shows_the_cost_to_a_grade_that_may_see_it(client, world):
    world["grade"].may_see_floor_price = True
    world["grade"].save(update_fields=["may_see_floor_price"])
    client.force_login(world["me"].user)

    pages = _pages(client, world)

    assert f"¥{PLANTED}" in pages["distribution:agent-store"]
    assert f"¥{PLANTED}" in pages["commissions:statements"]


def test_a_price_below_the_floor_is_refused_without_naming_the_floor(client, world):
    client.force_login(world["me"].user)

    response = client.post(
        reverse("distribution:agent-store"),
        {"action": "price", "product": world["product"].pk, "price": "12.00"},
    )

    html = response.content.decode()
    assert "售价低于商户允许的最低价" in html
    assert PLANTED not in html
