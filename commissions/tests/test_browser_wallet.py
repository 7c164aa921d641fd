"""In chromium: a distributor logs in to the agent portal, opens the wallet from its nav, sees
the pending commission of a delivered order, adds a payout account and asks for a withdrawal
that then shows in the history (the data is prepared through the services)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from commissions.models import Withdrawal, WithdrawalStatus
from commissions.services import run_settlement, split_commissions

from .factories import make_chain, make_order


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_distributor_sees_a_pending_commission_and_asks_for_a_withdrawal(page, live_server):
    # given ¥100.00 settled from an earlier order and ¥25.00 pending from one just delivered
    seller, _parent = make_chain(2, rates=(1000, 500, 0))
    split_commissions(order=make_order(seller, paid="1000.00"))
    run_settlement(cycle="daily", now=timezone.now() + timedelta(days=30))
    delivered = make_order(seller, paid="250.00")
    split_commissions(order=delivered)

    # when the distributor logs in to the portal and opens the wallet from its nav
    page.goto(f"{live_server.url}/agent/login/")
    page.fill("#id_username", seller.user.username)
    page.fill("#id_password", "kamen-test-pass")
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{live_server.url}/agent/")
    assert page.inner_text("[data-figure=pending-commission]") == "¥25.00"
    page.click(".agent-nav a:text-is('钱包')")
    page.wait_for_url(f"{live_server.url}/agent/wallet/")

    # then the pending commission of the delivered order is there, line by line
    assert page.inner_text("[data-figure=pending]") == "¥25.00"
    assert page.inner_text("[data-figure=available]") == "¥100.00"
    assert delivered.order_no in page.inner_text("table.data")

    # when they add an Alipay account and ask for ¥50.00
    page.click("text=申请提现")
    page.click("a:has-text('添加收款账户')")
    page.select_option("#id_method", "alipay")
    page.fill("#id_holder_name", "张三")
    page.fill("#id_account", "13800138000")
    page.click("button:has-text('保存')")
    page.wait_for_url(f"{live_server.url}/agent/wallet/withdrawals/create/")
    page.fill("#id_amount", "50.00")
    page.click("button:has-text('提交申请')")
    page.wait_for_url(f"{live_server.url}/agent/wallet/withdrawals/")

    # then the request is in the history, awaiting review, the account shown masked
    history = page.inner_text("table.data")
    assert "¥50.00" in history and "待审核" in history
    assert "138****8000" in history and "13800138000" not in page.content()
    withdrawal = Withdrawal.objects.get()
    assert withdrawal.status == WithdrawalStatus.REQUESTED and withdrawal.distributor_id == seller.pk
