"""Prepaid top-up (预存款): started in the portal through the sandbox gateway, credited through
the ledger on the signed notification, once; forged or wrong notifications credit nothing."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from commissions import selectors as commission_selectors
from commissions.models import Account, JournalEntry, JournalTransaction
from commissions.selectors import ledger_differences
from commissions.tests.factories import make_chain
from orders.gateways.sandbox import SandboxGateway, complete_sandbox_payment, signed_body
from orders.models import CallbackOutcome, SandboxPayment, TopUp, TopUpStatus
from orders.services import record_payment_notification, start_top_up


def _notify(top_up, *, event_id=None, amount=None, tamper=False):
    payload = {
        "app_id": SandboxGateway().app_id,
        "event_id": event_id or f"EVT-{top_up.top_up_no}",
        "out_trade_no": top_up.top_up_no,
        "trade_no": f"SBX-{top_up.top_up_no}",
        "amount": amount or f"{top_up.amount:.2f}",
        "currency": "CNY",
        "status": "succeeded",
        "paid_at": None,
    }
    body, headers = signed_body(payload)
    if tamper:
        body = body.replace(b"CNY", b"CNX")
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)


def _available(distributor):
    return commission_selectors.wallet(distributor)["available"]


@pytest.fixture
def agent(db):
    (seller,) = make_chain(1)
    return seller


@pytest.mark.django_db
def test_the_portal_starts_a_top_up_at_the_gateway_and_the_notification_credits_it(client, agent):
    client.force_login(agent.user)

    started = client.post(reverse("orders:agent-top-up"), {"amount": "200.00"})
    top_up = TopUp.objects.get()
    payment = SandboxPayment.objects.get(out_trade_no=top_up.top_up_no)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    result = _notify(top_up)
    page = client.get(reverse("orders:agent-top-up")).content.decode()

    assert started.status_code == 302 and payment.trade_no in started["Location"]
    assert result.callback.outcome == CallbackOutcome.PAID
    assert _available(agent) == Decimal("200.00")
    assert TopUp.objects.get().status == TopUpStatus.CREDITED
    assert "可用余额 ¥200.00" in page and "已到账" in page


@pytest.mark.django_db
def test_retries_and_a_second_event_for_the_same_top_up_credit_once(agent):
    top_up, _start = start_top_up(distributor_id=agent.pk, amount="50", notify_url="http://testserver/n/")

    first = _notify(top_up)
    retry = _notify(top_up)
    other_event = _notify(top_up, event_id="EVT-another")

    assert first.callback.outcome == CallbackOutcome.PAID
    assert retry.callback.pk == first.callback.pk
    assert other_event.callback.outcome == CallbackOutcome.DUPLICATE
    assert _available(agent) == Decimal("50.00")
    assert JournalTransaction.objects.filter(reference=f"topup:{top_up.top_up_no}").count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_of_the_notification_credit_once():
    (agent,) = make_chain(1)
    top_up, _start = start_top_up(distributor_id=agent.pk, amount="30", notify_url="http://testserver/n/")
    barrier = threading.Barrier(20)
    events = [f"EVT-{index % 2}" for index in range(20)]

    def run(event_id):
        try:
            barrier.wait()
            _notify(top_up, event_id=event_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert _available(agent) == Decimal("30.00")
    assert JournalTransaction.objects.filter(reference=f"topup:{top_up.top_up_no}").count() == 1


@pytest.mark.django_db
def test_a_wrong_amount_or_a_forged_body_credits_nothing(agent):
    top_up, _start = start_top_up(distributor_id=agent.pk, amount="50", notify_url="http://testserver/n/")

    wrong = _notify(top_up, amount="5000.00")
    forged = _notify(top_up, event_id="EVT-forged", tamper=True)

    assert wrong.callback.outcome == CallbackOutcome.REJECTED
    assert forged.callback.outcome == CallbackOutcome.REJECTED
    assert _available(agent) == Decimal("0.00")
    assert TopUp.objects.get().status == TopUpStatus.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-5", "abc", "50000.01", "1.234", ""])
def test_bad_amounts_are_refused_on_the_form_and_nothing_is_recorded(client, agent, amount):
    client.force_login(agent.user)

    response = client.post(reverse("orders:agent-top-up"), {"amount": amount})

    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert TopUp.objects.count() == 0


def _merchant_balances() -> dict:
    return {
        account.kind: account.balance for account in Account.objects.filter(distributor__isnull=True) if account.balance
    }


@pytest.mark.django_db
@override_settings(SANDBOX_FEE_RATE="0.6", SANDBOX_FEE_MINIMUM="0.00")
def test_a_top_up_is_held_in_gateway_clearing_with_its_fee_and_the_books_balance(agent):
    """¥200 topped up through a gateway charging 0.6 %: the gateway holds ¥200 for the merchant
    (clearing, as for a buyer's payment), the distributor has ¥200 to spend, the ¥1.20 fee is the
    merchant's cost; merchant revenue is not touched."""
    top_up, _start = start_top_up(distributor_id=agent.pk, amount="200.00", notify_url="http://testserver/n/")

    _notify(top_up)
    entries = JournalEntry.objects.filter(transaction__reference=f"topup:{top_up.top_up_no}")

    assert _available(agent) == Decimal("200.00")
    assert _merchant_balances() == {
        "gateway_clearing": Decimal("-200.00"),
        "gateway_fees": Decimal("1.20"),
        "merchant_profit": Decimal("-1.20"),
    }
    assert sum(e.amount for e in entries if e.side == "debit") == sum(e.amount for e in entries if e.side == "credit")
    report = ledger_differences()
    assert report["accounts"] == [] and report["transactions"] == []
