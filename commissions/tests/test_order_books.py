"""The whole of an order's money in the journal (issue 18 §1, docs/adr/0020), through the real
pipeline: checkout, the sandbox gateway's notification, fulfilment, refund."""

from decimal import Decimal

import pytest
from django.test import override_settings

from catalog.models import CardKeyBatch
from commissions.book_selectors import order_books
from commissions.models import AccountKind, JournalEntry, TransactionKind
from commissions.selectors import ledger_differences
from distribution.services.referrals import create_referral_link
from orders.services import fulfil_order
from orders.services.refunds import refund_order
from orders.tests.factories import add_keys, buy, make_product, pay

from .factories import make_chain

D = Decimal
TWO_PERCENT = {"SANDBOX_FEE_RATE": "2", "SANDBOX_FEE_MINIMUM": "0"}


def _sell(product, *, link=None, quantity=1, capture=None):
    referral = {"code": link.code, "channel": "wechat"} if link else None
    order = buy(product, quantity=quantity, **({"referral": referral} if referral else {}))
    with capture(execute=True):
        pay(order)
    fulfil_order(order_id=order.pk)
    order.refresh_from_db()
    return order


@pytest.fixture
def seed_example(db, django_capture_on_commit_callbacks):
    """The seed's example: ¥100, 2 % fee, ¥60 cost (the key's batch), 8 / 4 / 2 over three levels."""
    seller, parent, grandparent = make_chain(3, rates=(800, 400, 200))
    link = create_referral_link(distributor=seller, channel="wechat")
    product = make_product(price="100.00", cost_price=D("50.00"))  # the batch's cost wins
    (key,) = add_keys(product, 1)
    CardKeyBatch.objects.filter(pk=key.batch_id).update(unit_cost=D("60.00"))
    with override_settings(**TWO_PERCENT):
        order = _sell(product, link=link, capture=django_capture_on_commit_callbacks)
    return order, (seller, parent, grandparent)


def test_the_seed_example_leaves_the_merchant_24_and_shows_every_line(seed_example):
    order, (seller, parent, grandparent) = seed_example

    books = order_books(order_id=order.pk)

    assert books.paid == D("100.00")
    assert books.fee == D("2.00")
    assert books.cost == D("60.00")
    assert [(line.level, line.amount) for line in books.commissions] == [(1, D("8.00")), (2, D("4.00")), (3, D("2.00"))]
    assert books.price_differences == D("0.00")
    assert books.profit == D("24.00")
    assert books.paid - books.fee - books.cost - books.commission_total - books.price_differences == books.profit
    # every line, each journal transaction balanced: the payment, the accrual, cost and profit
    shown = {(line.kind, line.account_kind, line.side, line.amount) for line in books.lines}
    assert (TransactionKind.ORDER_PAYMENT, AccountKind.GATEWAY_CLEARING, "debit", D("100.00")) in shown
    assert (TransactionKind.ORDER_PAYMENT, AccountKind.GATEWAY_FEES, "credit", D("2.00")) in shown
    assert (TransactionKind.ORDER_DELIVERY, AccountKind.SUPPLIER_COST, "credit", D("60.00")) in shown
    assert (TransactionKind.ORDER_DELIVERY, AccountKind.MERCHANT_PROFIT, "credit", D("24.00")) in shown
    assert sum(line.signed for line in books.lines) == D("0.00")
    assert ledger_differences()["accounts"] == [] and ledger_differences()["transactions"] == []


def test_a_full_refund_brings_every_account_back_but_the_fee_the_gateway_keeps(
    seed_example, django_capture_on_commit_callbacks
):
    order, chain = seed_example

    with override_settings(**TWO_PERCENT, SANDBOX_FEE_REFUNDED="0"), django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount=order.paid_amount, reason="买家申请退款")

    balances = _balances_of(order)
    assert balances.pop(AccountKind.GATEWAY_FEES) == D("2.00")
    assert balances.pop(AccountKind.MERCHANT_PROFIT) == D("-2.00")  # the fee kept is the loss
    assert set(balances.values()) == {D("0.00")}
    assert ledger_differences()["accounts"] == [] and ledger_differences()["transactions"] == []


def test_a_gateway_that_returns_its_fee_leaves_nothing_after_a_full_refund(
    seed_example, django_capture_on_commit_callbacks
):
    order, chain = seed_example

    with override_settings(**TWO_PERCENT, SANDBOX_FEE_REFUNDED="1"), django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount=D("40.00"), reason="部分退款")
        refund_order(order=order, amount=D("60.00"), reason="余下退款")

    assert set(_balances_of(order).values()) == {D("0.00")}
    assert ledger_differences()["accounts"] == [] and ledger_differences()["transactions"] == []


def test_a_partial_refund_reverses_cost_and_commissions_in_proportion(seed_example, django_capture_on_commit_callbacks):
    order, chain = seed_example

    with override_settings(**TWO_PERCENT, SANDBOX_FEE_REFUNDED="0"), django_capture_on_commit_callbacks(execute=True):
        refund_order(order=order, amount=D("25.00"), reason="部分退款")

    books = order_books(order_id=order.pk)
    assert books.cost == D("45.00")
    assert books.commission_total == D("10.50")
    assert books.fee == D("2.00")
    assert books.profit == D("75.00") - D("2.00") - D("45.00") - D("10.50")


def test_the_payment_and_the_books_commit_together_once(seed_example):
    order, _chain = seed_example

    pay(order)  # the gateway's notification again
    fulfil_order(order_id=order.pk)

    payments = JournalEntry.objects.filter(
        transaction__order_id=order.pk, transaction__kind=TransactionKind.ORDER_PAYMENT
    )
    assert payments.count() == 3  # clearing 100 debit; revenue 98 and fee 2 credit
    assert order_books(order_id=order.pk).profit == D("24.00")


def _balances_of(order) -> dict[str, Decimal]:
    """Signed (credit − debit) sums of the order's lines by account kind, distributors' too."""
    sums: dict[str, Decimal] = {}
    for entry in JournalEntry.objects.filter(transaction__order_id=order.pk).select_related("account"):
        sums[entry.account.kind] = sums.get(entry.account.kind, D("0.00")) + entry.signed_amount
    return sums


def test_reconcile_ledger_checks_every_paid_order_and_every_delivered_keys_cost(seed_example):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from commissions.models import JournalTransaction
    from orders.models import Order

    order, _chain = seed_example
    out = StringIO()
    call_command("reconcile_ledger", stdout=out)
    assert "ledger reconciled" in out.getvalue()

    # an order paid without its books (as before issue 18), and a key whose batch cost changed
    product = make_product(price="10.00")
    (key,) = add_keys(product, 1)
    unbooked = buy(product)
    Order.objects.filter(pk=unbooked.pk).update(
        paid_at=order.paid_at, paid_amount=D("10.00"), payment_gateway="sandbox"
    )
    CardKeyBatch.objects.filter(pk=order.deliveries.get().card_key.batch_id).update(unit_cost=D("61.00"))
    assert JournalTransaction.objects.filter(order_id=unbooked.pk).count() == 0

    out = StringIO()
    with pytest.raises(CommandError, match="2 order book problem"):
        call_command("reconcile_ledger", stdout=out)
    assert f"order {unbooked.order_no}: paid ¥10.00 but no payment lines" in out.getvalue()
    assert f"order {order.order_no}: its keys' batch cost is ¥61.00 but ¥60.00 is booked" in out.getvalue()


def test_the_order_page_shows_every_line_and_the_profit_report_sums_the_ledger(seed_example, client, django_user_model):
    from django.contrib.auth.models import Group

    from kamen.roles import FINANCE, OPERATOR, sync_roles

    order, (seller, _parent, _grandparent) = seed_example
    sync_roles()
    finance = django_user_model.objects.create_user("fin", password="pw-123456!", is_staff=True)
    finance.groups.add(Group.objects.get(name=FINANCE))
    operator = django_user_model.objects.create_user("ops", password="pw-123456!", is_staff=True)
    operator.groups.add(Group.objects.get(name=OPERATOR))

    client.force_login(finance)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert '<strong id="order-profit">¥24.00</strong>' in page
    assert page.count("<tr>\n        <td>") >= 10  # payment 3, accrual 4, cost and profit 4 lines
    for by, label in (("product", order.product_name), ("day", ""), ("distributor", f"#{seller.pk}")):
        report = client.get("/admin/orders/order/profit/", {"by": by}).content.decode()
        assert "¥24.00" in report and label in report

    client.force_login(operator)
    assert 'id="order-profit"' not in client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert client.get("/admin/orders/order/profit/").status_code == 403
