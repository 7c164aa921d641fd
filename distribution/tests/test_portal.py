"""The agent portal: a distributor sees their own subtree and nothing else (404 for the rest)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from distribution import services
from distribution.models import (
    AdmissionMode,
    Distributor,
    DistributorStatus,
    ReferralLink,
)
from distribution.services.sales import record_order_sales
from orders.models import Order, OrderStatus

from .factories import DistributorFactory, GradeFactory, ProductFactory

pytestmark = pytest.mark.django_db


def make_order(
    distributor,
    *,
    amount="50.00",
    status=OrderStatus.COMPLETED,
    contact="13812345678",
    paid_at=None,
    link=None,
):
    product = ProductFactory()
    now = timezone.now()
    paid = status not in (OrderStatus.PENDING_PAYMENT, OrderStatus.EXPIRED)
    order = Order.objects.create(
        order_no=f"K{Order.objects.count() + 1:010d}",
        status=status,
        product=product,
        product_name=product.name,
        product_type=product.product_type,
        quantity=1,
        unit_price=Decimal(amount),
        total_amount=Decimal(amount),
        paid_amount=Decimal(amount) if paid else Decimal(0),
        paid_at=(paid_at or now) if paid else None,
        contact=contact,
        contact_kind="mobile",
        query_password_hash="x",
        distributor_id=distributor.pk,
        attribution={"link": link} if link else {},
        expires_at=now + timedelta(minutes=15),
    )
    if order.paid_at is not None:
        # Written already paid, past the state machine: the seller's day is recounted, as
        # the state machine's move would have added it.
        record_order_sales(distributor_id=distributor.pk, day=timezone.localdate(order.paid_at))
    return order


@pytest.fixture
def network():
    """me → child → grandchild; a stranger in another tree; my parent above me."""
    grade = GradeFactory(may_open_sub_store=True)
    parent = DistributorFactory(grade=grade)
    me = DistributorFactory(grade=grade, parent=Distributor.objects.get(pk=parent.pk))
    child = DistributorFactory(grade=grade, parent=Distributor.objects.get(pk=me.pk))
    grandchild = DistributorFactory(
        grade=grade, parent=Distributor.objects.get(pk=child.pk)
    )
    stranger = DistributorFactory(grade=grade)
    return {
        name: Distributor.objects.get(pk=node.pk)
        for name, node in {
            "parent": parent,
            "me": me,
            "child": child,
            "grandchild": grandchild,
            "stranger": stranger,
        }.items()
    }


@pytest.fixture
def agent_client(client, network):
    client.force_login(network["me"].user)
    return client


def test_the_portal_needs_a_login_and_has_its_own_login_page(client, network):
    response = client.get(reverse("distribution:agent-dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("distribution:agent-login"))

    response = client.post(
        reverse("distribution:agent-login"),
        {"username": network["me"].user.username, "password": "kamen-test-pass"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("distribution:agent-dashboard")


def test_a_user_who_is_no_distributor_or_is_frozen_gets_no_portal(
    client, django_user_model, network
):
    client.force_login(
        django_user_model.objects.create_user(username="buyer", password="x")
    )
    assert client.get(reverse("distribution:agent-dashboard")).status_code == 403

    Distributor.objects.filter(pk=network["me"].pk).update(
        status=DistributorStatus.FROZEN
    )
    client.force_login(network["me"].user)
    assert client.get(reverse("distribution:agent-dashboard")).status_code == 403


def test_the_dashboard_counts_sales_of_the_subtree_only(agent_client, network):
    make_order(network["me"], amount="10.00")
    make_order(network["grandchild"], amount="5.50")
    make_order(network["parent"], amount="1000.00")
    make_order(network["stranger"], amount="2000.00")
    make_order(network["child"], amount="7.00", status=OrderStatus.PENDING_PAYMENT)

    response = agent_client.get(reverse("distribution:agent-dashboard"))

    assert response.status_code == 200
    figures = response.context["figures"]
    assert figures["today"]["amount"] == Decimal("15.50")
    assert figures["month"]["orders"] == 2
    assert figures["team"]["active"] == 2
    assert sum(day.amount for day in figures["chart"]) == Decimal("15.50")
    assert len(figures["chart"]) == 30
    assert "<svg" in response.content.decode()


def test_the_team_view_expands_into_the_subtree_but_not_outside(agent_client, network):
    assert (
        agent_client.get(reverse("distribution:agent-team")).context["children"][0].pk
        == network["child"].pk
    )
    response = agent_client.get(
        reverse("distribution:agent-team-member", args=[network["child"].pk])
    )
    assert [member.pk for member in response.context["children"]] == [
        network["grandchild"].pk
    ]

    for outsider in ("parent", "stranger"):
        assert (
            agent_client.get(
                reverse("distribution:agent-team-member", args=[network[outsider].pk])
            ).status_code
            == 404
        )


def test_the_team_breadcrumbs_run_from_me_to_the_member_and_never_above_me(
    agent_client, network, django_assert_max_num_queries
):
    response = agent_client.get(
        reverse("distribution:agent-team-member", args=[network["grandchild"].pk])
    )
    assert [node.pk for node in response.context["trail"]] == [
        network["me"].pk,
        network["child"].pk,
    ]
    crumbs = response.content.decode().split('class="breadcrumbs"')[1].split("</p>")[0]
    assert str(network["child"].user) in crumbs
    assert str(network["grandchild"].user) in crumbs
    assert str(network["parent"].user) not in crumbs

    # one more level below costs no more queries (no query per breadcrumb)
    deeper = DistributorFactory(
        grade=network["me"].grade,
        parent=Distributor.objects.get(pk=network["grandchild"].pk),
    )
    url = reverse("distribution:agent-team-member", args=[network["grandchild"].pk])
    with django_assert_max_num_queries(100) as shallow:
        agent_client.get(url)
    with django_assert_max_num_queries(100) as deep:
        agent_client.get(reverse("distribution:agent-team-member", args=[deeper.pk]))
    assert len(deep.captured_queries) == len(shallow.captured_queries)


def test_network_orders_mask_buyers_and_others_orders_are_404(agent_client, network):
    mine = make_order(network["grandchild"], contact="13812345678")
    theirs = make_order(network["stranger"])
    above = make_order(network["parent"])

    page = agent_client.get(reverse("distribution:agent-orders")).content.decode()
    assert mine.order_no in page
    assert "138****5678" in page
    assert "13812345678" not in page
    assert theirs.order_no not in page
    assert (
        agent_client.get(
            reverse("distribution:agent-order-detail", args=[mine.order_no])
        ).status_code
        == 200
    )
    assert (
        agent_client.get(
            reverse("distribution:agent-order-detail", args=[theirs.order_no])
        ).status_code
        == 404
    )
    assert (
        agent_client.get(
            reverse("distribution:agent-order-detail", args=[above.order_no])
        ).status_code
        == 404
    )


def test_sub_store_settings_and_prices_through_the_portal(agent_client, network):
    product = ProductFactory(
        retail_price=Decimal("100.00"), max_resale_price=Decimal("120.00")
    )

    response = agent_client.post(
        reverse("distribution:agent-store"),
        {"name": "小王卡铺", "slug": "wang", "notice": "", "is_open": "on"},
    )
    assert response.status_code == 302
    response = agent_client.post(
        reverse("distribution:agent-store"),
        {"action": "price", "product": product.pk, "price": "150"},
    )
    assert "不能高于商户限价 ¥120.00" in response.content.decode()
    agent_client.post(
        reverse("distribution:agent-store"),
        {"action": "price", "product": product.pk, "price": "110"},
    )

    store_page = agent_client.get(
        reverse("distribution:sub-store", args=["wang"])
    ).content.decode()
    assert "小王卡铺" in store_page
    assert "¥110.00" in store_page


def test_links_show_clicks_orders_and_conversion(agent_client, network):
    agent_client.post(reverse("distribution:agent-links"), {"channel": "douyin"})
    link = ReferralLink.objects.get(distributor=network["me"], channel="douyin")
    for _ in range(4):
        services.record_referral_click(code=link.code)
    make_order(network["me"], link=link.code)

    response = agent_client.get(reverse("distribution:agent-links"))

    row = response.context["rows"][0]
    assert row["link"].clicks == 4
    assert row["paid_orders"] == 1
    assert row["conversion"] == Decimal("25.0")
    assert (
        reverse("distribution:join", args=[network["me"].invite_code])
        in response.content.decode()
    )


def test_a_referral_link_counts_the_click_and_lands_with_ref(client, network):
    link = services.create_referral_link(distributor=network["me"], channel="wechat")

    response = client.get(reverse("distribution:referral", args=[link.code]))

    assert response.status_code == 302
    assert f"ref={link.code}" in response["Location"]
    assert "ch=wechat" in response["Location"]
    assert ReferralLink.objects.get(pk=link.pk).clicks == 1
    assert client.get(reverse("distribution:referral", args=["NOPE"]))[
        "Location"
    ] == reverse("catalog:shop-home")


def test_the_poster_is_a_png_for_the_distributor(
    agent_client, network, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = settings.STORAGES | {
        "private": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path / "p"}}
    }
    settings.SITE_URL = "https://shop.example.com"
    product = ProductFactory(name="网易云音乐黑胶VIP")

    response = agent_client.get(
        reverse("distribution:agent-poster-image", args=[product.pk])
    )
    again = agent_client.get(
        reverse("distribution:agent-poster-image", args=[product.pk]),
        HTTP_HOST="localhost",
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert "private" in response["Cache-Control"]
    # Asked through another host, the same poster: its QR code carries SITE_URL, not the host.
    assert again.content == response.content


def test_custom_copy_with_banned_words_shows_them_and_is_not_published(
    agent_client, network
):
    response = agent_client.post(
        reverse("distribution:agent-copy"),
        {"channel": "wechat", "body": "国家级品质，顶级服务"},
    )

    page = response.content.decode()
    assert "国家级" in page and "顶级" in page
    assert network["me"].copies.count() == 0


def test_joining_through_an_invite_link_page(client, network):
    GradeFactory(
        name="推广员", rank=1, is_default=True, admission_mode=AdmissionMode.AUTOMATIC
    )

    response = client.post(
        reverse("distribution:join", args=[network["me"].invite_code]),
        {
            "username": "xiaoli",
            "password": "Strong-pass-2026",
            "phone": "13900001111",
            "region": "杭州",
        },
    )

    assert response.status_code == 302
    joined = Distributor.objects.get(user__username="xiaoli")
    assert joined.parent_id == network["me"].pk
    assert client.get(reverse("distribution:agent-dashboard")).status_code == 200


def test_joining_with_a_bad_code_says_so(client, network):
    page = client.get(reverse("distribution:join", args=["BADBAD"])).content.decode()

    assert "不存在" in page


def test_a_direct_sub_store_visit_counts_a_click_and_its_links_carry_the_referral(
    client, network
):
    store = services.save_sub_store(
        distributor=network["me"], name="小店", slug="little"
    )
    product = ProductFactory()
    link = ReferralLink.objects.get(sub_store=store)

    page = client.get(
        reverse("distribution:sub-store", args=["little"])
    ).content.decode()
    client.get(
        reverse("distribution:sub-store", args=["little"]),
        {"ref": link.code, "ch": "other"},
    )

    assert ReferralLink.objects.get(pk=link.pk).clicks == 1
    assert f"/s/little/products/{product.pk}/?ref={link.code}&amp;ch=other" in page


def test_a_closed_or_frozen_sub_store_is_404(client, network):
    services.save_sub_store(
        distributor=network["me"], name="小店", slug="little", is_open=False
    )

    assert (
        client.get(reverse("distribution:sub-store", args=["little"])).status_code
        == 404
    )
    assert (
        client.get(reverse("distribution:sub-store", args=["nobody"])).status_code
        == 404
    )
