from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from commissions import selectors
from commissions.models import (
    Account,
    AccountKind,
    Commission,
    CommissionRule,
    JournalEntry,
    SettlementRun,
    Withdrawal,
    WithdrawalStatus,
)
from commissions.services import (
    add_payout_account,
    request_withdrawal,
    reverse_commissions,
    run_settlement,
    split_commissions,
)
from commissions.services.ledger import merchant_account

from .factories import ProductFactory, UserFactory, make_chain, make_order, refund
from .test_lifecycle import LATER
from .test_withdrawals import _fund


@pytest.fixture
def finance_client(client, db):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    client.force_login(user)
    return client


def test_a_rule_over_the_cap_is_refused_on_the_form_with_the_reason(finance_client):
    response = finance_client.post(
        reverse("admin:commissions_commissionrule_add"),
        {
            "level": 1,
            "trigger": "sale",
            "mode": "percent",
            "rate_bp": 4000,
            "fixed_amount": "0.00",
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert "超过单笔订单上限" in response.content.decode()
    assert not CommissionRule.objects.exists()


def test_a_compliant_rule_is_saved_from_the_form(finance_client):
    response = finance_client.post(
        reverse("admin:commissions_commissionrule_add"),
        {
            "level": 1,
            "trigger": "sale",
            "mode": "percent",
            "rate_bp": 800,
            "fixed_amount": "0.00",
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    assert CommissionRule.objects.get().rate_bp == 800


def test_the_preview_tells_what_an_order_of_100_pays(finance_client):
    seller, _parent = make_chain(2, rates=(1000, 500, 0))
    product = ProductFactory(cost_price=Decimal("0.00"))

    response = finance_client.get(
        reverse("admin:commissions_commissionrule_preview"),
        {"distributor": seller.pk, "product": product.pk, "amount": "100.00"},
    )

    body = response.content.decode()
    assert "共支付佣金 ¥15.00" in body and "商户保留 ¥85.00" in body
    assert not Commission.objects.exists()


def test_the_report_equals_the_ledger_over_several_orders_and_levels(finance_client):
    seller, _parent, _grandparent = make_chain(3, rates=(1000, 500, 200))
    orders = [
        make_order(seller, paid=paid, cost="0.00")
        for paid in ("100.00", "55.55", "12.34")
    ]
    for order in orders:
        split_commissions(order=order)
    run_settlement(cycle="daily", now=LATER)
    reverse_commissions(order=refund(orders[1], "20.00"))

    rows = selectors.commission_report()

    assert (
        sum(row["earned"] for row in rows)
        == Commission.objects.aggregate(total=Sum("amount"))["total"]
    )
    assert (
        sum(row["reversed"] for row in rows)
        == Commission.objects.aggregate(total=Sum("reversed_amount"))["total"]
    )
    for row in rows:
        balances = Account.objects.filter(
            distributor_id=row["distributor_id"]
        ).aggregate(total=Sum("balance"))["total"]
        assert row["net"] == balances
    assert -merchant_account(AccountKind.MERCHANT_REVENUE).balance == sum(
        row["net"] for row in rows
    )
    assert (
        finance_client.get(reverse("admin:commissions_commission_report")).status_code
        == 200
    )


def test_commissions_export_as_csv(finance_client):
    seller, *_rest = make_chain(1)
    order = make_order(seller)
    split_commissions(order=order)

    response = finance_client.post(
        reverse("admin:commissions_commission_changelist"),
        {
            "action": "export_csv",
            "_selected_action": list(Commission.objects.values_list("pk", flat=True)),
        },
    )

    assert response["Content-Type"].startswith("text/csv")
    assert order.order_no in response.content.decode("utf-8-sig")


def test_finance_approves_and_rejects_from_the_review_queue(finance_client):
    seller, *_rest = make_chain(1)
    _fund(seller, "500.00")
    account = add_payout_account(
        distributor=seller, method="alipay", holder_name="张三", account="13800138000"
    )
    first = request_withdrawal(
        distributor=seller, payout_account=account, amount="100.00", token="a"
    )
    second = request_withdrawal(
        distributor=seller, payout_account=account, amount="100.00", token="b"
    )
    url = reverse("admin:commissions_withdrawal_changelist")

    finance_client.post(
        url, {"action": "approve", "_selected_action": [first.pk], "reason": ""}
    )
    finance_client.post(
        url, {"action": "reject", "_selected_action": [second.pk], "reason": "信息不符"}
    )

    assert Withdrawal.objects.get(pk=first.pk).status == WithdrawalStatus.APPROVED
    assert Withdrawal.objects.get(pk=second.pk).status == WithdrawalStatus.REJECTED
    assert selectors.wallet(seller)["available"] == Decimal("400.00")


def test_ledger_views_are_read_only(finance_client):
    seller, *_rest = make_chain(1)
    split_commissions(order=make_order(seller))
    entry = JournalEntry.objects.first()

    assert (
        finance_client.get(
            reverse("admin:commissions_journalentry_changelist")
        ).status_code
        == 200
    )
    assert (
        finance_client.get(
            reverse(
                "admin:commissions_journaltransaction_change",
                args=[entry.transaction_id],
            )
        ).status_code
        == 200
    )
    assert (
        finance_client.post(
            reverse("admin:commissions_journalentry_delete", args=[entry.pk])
        ).status_code
        == 403
    )


def test_a_manual_settlement_run_from_the_console(finance_client):
    seller, *_rest = make_chain(1)
    split_commissions(order=make_order(seller))
    Commission.objects.update(available_at=timezone.now() - timedelta(minutes=1))

    response = finance_client.post(
        reverse("admin:commissions_settlementrun_run"), {"token": "x1"}
    )

    assert response.status_code == 302
    assert SettlementRun.objects.get().key == "manual:x1"


# --- 立即结算: a confirmation, one run per click, never an empty run ---------------------------


def _commissions_due_now():
    seller, _parent = make_chain(2, rates=(1000, 500, 0))
    split_commissions(order=make_order(seller, product_type="card_key"))
    Commission.objects.update(available_at=timezone.now() - timedelta(minutes=1))


def test_settle_now_asks_for_confirmation_and_shows_what_is_due(finance_client):
    _commissions_due_now()

    listing = finance_client.get(reverse("admin:commissions_settlementrun_changelist")).content.decode()
    page = finance_client.get(reverse("admin:commissions_settlementrun_run"))

    assert 'method="post"' not in listing.split('id="settle-now"', 1)[1].split("</li>", 1)[0]
    assert page.status_code == 200
    body = page.content.decode()
    assert "确认立即结算" in body and 'name="token"' in body
    assert not SettlementRun.objects.exists()


def test_settle_now_twice_with_the_same_form_creates_one_run(finance_client):
    _commissions_due_now()
    page = finance_client.get(reverse("admin:commissions_settlementrun_run")).content.decode()
    token = page.split('name="token" value="', 1)[1].split('"', 1)[0]

    first = finance_client.post(reverse("admin:commissions_settlementrun_run"), {"token": token}, follow=True)
    second = finance_client.post(reverse("admin:commissions_settlementrun_run"), {"token": token}, follow=True)

    assert SettlementRun.objects.count() == 1
    assert SettlementRun.objects.get().commission_count == 2
    assert "结算完成：2 笔" in first.content.decode()
    assert "结算完成：2 笔" in second.content.decode()


def test_settle_now_with_nothing_due_creates_no_run_and_says_so(finance_client):
    _commissions_due_now()
    finance_client.post(reverse("admin:commissions_settlementrun_run"), {"token": "first"})

    again = finance_client.post(reverse("admin:commissions_settlementrun_run"), {"token": "second"}, follow=True)
    empty = run_settlement(cycle="daily", now=LATER)

    assert SettlementRun.objects.count() == 1
    assert "没有到期可结算的佣金" in again.content.decode()
    assert empty.pk is None and empty.commission_count == 0
