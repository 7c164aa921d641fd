from decimal import Decimal

import pytest
from django.urls import reverse

from commissions.models import PayoutAccount, Withdrawal
from commissions.services import add_payout_account, split_commissions

from .factories import make_chain, make_order
from .test_withdrawals import _fund


@pytest.fixture
def agent_client(client, db):
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    client.force_login(seller.user)
    return client, seller, parent


def test_the_wallet_shows_pending_available_and_frozen(agent_client):
    client, seller, _parent = agent_client
    order = make_order(seller)
    split_commissions(order=order)
    _fund(seller, "12.00")

    response = client.get(reverse("commissions:wallet"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "¥10.00" in body and "¥12.00" in body and order.order_no in body


def test_statement_lines_show_only_the_viewers_own_commissions(agent_client):
    client, seller, _parent = agent_client
    split_commissions(order=make_order(seller))

    body = client.get(reverse("commissions:statements")).content.decode()

    assert "第 1 级" in body and "第 2 级" not in body


def test_a_withdrawal_form_posts_once_per_token_and_lists_the_account_masked(
    agent_client,
):
    client, seller, _parent = agent_client
    _fund(seller, "500.00")
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )
    form = client.get(reverse("commissions:withdrawal-create"))
    token = form.context["form"].initial["token"]
    assert (
        "138****8000" in form.content.decode()
        and "13800138000" not in form.content.decode()
    )

    data = {"payout_account": account.pk, "amount": "100.00", "token": token}
    first = client.post(reverse("commissions:withdrawal-create"), data)
    second = client.post(reverse("commissions:withdrawal-create"), data)

    assert first.status_code == second.status_code == 302
    assert Withdrawal.objects.count() == 1
    assert "¥100.00" in client.get(reverse("commissions:withdrawals")).content.decode()


def test_a_withdrawal_above_the_balance_shows_the_reason_and_changes_nothing(
    agent_client,
):
    client, seller, _parent = agent_client
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )

    response = client.post(
        reverse("commissions:withdrawal-create"),
        {"payout_account": account.pk, "amount": "100.00", "token": "t"},
    )

    assert response.status_code == 400
    assert "余额不足" in response.content.decode()
    assert not Withdrawal.objects.exists()


def test_a_malformed_bank_card_is_refused_on_the_form(agent_client):
    client, _seller, _parent = agent_client

    response = client.post(
        reverse("commissions:payout-account-create"),
        {
            "method": "bank_card",
            "holder_name": "张三",
            "account": "6222020200112233441",
            "bank_name": "工行",
        },
    )

    assert response.status_code == 400
    assert (
        "校验失败" in response.content.decode() or "12–19" in response.content.decode()
    )
    assert not PayoutAccount.objects.exists()


def test_tax_statements_page_lists_the_months(agent_client):
    client, seller, _parent = agent_client
    _fund(seller, "3000.00")
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )
    client.post(
        reverse("commissions:withdrawal-create"),
        {"payout_account": account.pk, "amount": "3000.00", "token": "t"},
    )

    body = client.get(reverse("commissions:tax-statements")).content.decode()

    assert "¥440.00" in body


def test_the_tax_statement_shows_the_tax_returned_after_a_rejection(agent_client):
    from django.contrib.auth.models import Group

    from commissions.services import reject_withdrawal, request_withdrawal

    from .factories import UserFactory

    client, seller, _parent = agent_client
    seller.grade.withdrawal_daily_max_amount = Decimal("10000.00")
    seller.grade.save()
    _fund(seller, "4000.00")
    account = add_payout_account(distributor=seller, method="alipay", holder_name="张三", account="13800138000")
    first = request_withdrawal(distributor=seller, payout_account=account, amount="3000.00", token="a")
    request_withdrawal(distributor=seller, payout_account=account, amount="1000.00", token="b")
    reviewer = UserFactory(is_staff=True)
    reviewer.groups.add(Group.objects.get(name="finance"))
    reject_withdrawal(withdrawal=first, actor=reviewer, reason="驳回")

    body = client.get(reverse("commissions:tax-statements")).content.decode()

    assert "<td>¥1000.00</td><td>¥40.00</td><td>¥-160.00</td>" in body


@pytest.mark.django_db
def test_someone_who_is_not_a_distributor_is_refused(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user(username="buyer", password="x")
    )
    assert client.get(reverse("commissions:wallet")).status_code == 403


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("commissions:wallet"))
    assert response.status_code == 302
    assert "next=%2Fagent%2Fwallet%2F" in response["Location"]


def test_the_wallet_lives_in_the_agent_portal_with_a_wallet_link_in_its_nav(
    agent_client,
):
    client, _seller, _parent = agent_client

    wallet_page = client.get(reverse("commissions:wallet")).content.decode()
    dashboard = client.get(reverse("distribution:agent-dashboard")).content.decode()

    assert 'class="agent-nav"' in wallet_page and 'class="wallet-nav"' in wallet_page
    assert reverse("distribution:agent-team") in wallet_page
    assert f'href="{reverse("commissions:wallet")}"' in dashboard


def test_the_dashboard_shows_pending_and_available_commission_in_few_queries(
    agent_client, django_assert_max_num_queries
):
    client, seller, _parent = agent_client
    split_commissions(order=make_order(seller))  # ¥10.00 pending
    _fund(seller, "12.00")

    # session, user, distributor, notices, daily sales, team counts — and one for the wallet
    with django_assert_max_num_queries(7):
        response = client.get(reverse("distribution:agent-dashboard"))

    body = response.content.decode()
    assert response.context["wallet"]["pending"] == Decimal("10.00")
    assert 'data-figure="pending-commission">¥10.00<' in body
    assert 'data-figure="available-commission">¥12.00<' in body
    assert "—" not in body
