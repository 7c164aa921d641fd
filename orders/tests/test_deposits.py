"""A grade's deposit paid through the gateway from the portal, and the first-order threshold
counted from real paid orders (docs/adr/0023): nothing is ticked by hand any more."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from commissions.models import AccountKind, JournalTransaction
from commissions.services import deposit_balance
from commissions.services.ledger import merchant_account
from distribution import services as distribution_services
from distribution.models import AdmissionMode, DepositStatus, Distributor, DistributorStatus
from distribution.tests.factories import DistributorFactory, GradeFactory
from orders.gateways.sandbox import SandboxGateway, signed_body
from orders.models import CallbackOutcome, DepositPayment, SandboxPayment, TopUpStatus
from orders.services import record_payment_notification, refund_order, start_deposit_payment

from .factories import add_keys, buy, make_product, pay

pytestmark = pytest.mark.django_db


def _applicant(*, deposit="500.00", first_order="0.00", mode=AdmissionMode.STAFF):
    grade = GradeFactory(admission_mode=mode, deposit_amount=Decimal(deposit), first_order_amount=Decimal(first_order))
    parent = DistributorFactory(grade=grade)
    return DistributorFactory(
        parent=parent,
        grade=grade,
        status=DistributorStatus.APPLIED,
        joined_at=None,
        deposit_amount=Decimal(deposit),
        deposit_status=DepositStatus.PENDING if Decimal(deposit) else DepositStatus.NONE,
    )


def _notify(payment, *, event_id=None, amount=None, tamper=False, app_id=None):
    payload = {
        "app_id": app_id or SandboxGateway().app_id,
        "event_id": event_id or f"EVT-{payment.deposit_no}",
        "out_trade_no": payment.deposit_no,
        "trade_no": f"SBX-{payment.deposit_no}",
        "amount": amount or f"{payment.amount:.2f}",
        "currency": "CNY",
        "status": "succeeded",
        "paid_at": None,
    }
    body, headers = signed_body(payload)
    if tamper:
        body = body.replace(b"CNY", b"CNX")
    return record_payment_notification(gateway_code=SandboxGateway.code, body=body, headers=headers)


def _start(applicant, amount="500.00"):
    payment, _start_ = start_deposit_payment(
        distributor_id=applicant.pk, amount=amount, notify_url="http://testserver/pay/notify/sandbox/"
    )
    return payment


def test_an_applicant_pays_the_deposit_from_the_portal_and_the_callback_holds_it(client, django_user_model):
    applicant = _applicant()
    client.force_login(applicant.user)
    before = client.get(reverse("orders:agent-deposit")).content.decode()

    started = client.post(reverse("orders:agent-deposit"), {"action": "pay", "amount": "500.00"})
    payment = DepositPayment.objects.get()
    result = _notify(payment)
    page = client.get(reverse("orders:agent-deposit")).content.decode()
    applicant.refresh_from_db()

    assert 'id="deposit-held">¥0' in before and "去支付" in before
    assert started.status_code == 302
    assert SandboxPayment.objects.get(out_trade_no=payment.deposit_no).trade_no in started["Location"]
    assert result.callback.outcome == CallbackOutcome.PAID
    assert DepositPayment.objects.get().status == TopUpStatus.CREDITED
    assert deposit_balance(applicant.pk) == Decimal("500.00")
    assert merchant_account(AccountKind.GATEWAY_CLEARING).balance == Decimal("-500.00")
    assert applicant.deposit_status == DepositStatus.HELD
    assert applicant.status == DistributorStatus.APPLIED  # a staff grade: now eligible, not yet admitted
    assert 'id="deposit-held">¥500.00' in page and "去支付" not in page
    owner = django_user_model.objects.create_superuser(username="boss", password="x" * 12)
    approved = distribution_services.approve_distributor(distributor=applicant, actor=owner)
    assert approved.status == DistributorStatus.ACTIVE


def test_an_automatically_admitted_grade_admits_the_applicant_once_the_deposit_is_held():
    applicant = _applicant(mode=AdmissionMode.AUTOMATIC)

    _notify(_start(applicant))

    assert Distributor.objects.get(pk=applicant.pk).status == DistributorStatus.ACTIVE


def test_forged_replayed_or_mismatched_callbacks_hold_nothing_and_the_deposit_is_held_once():
    applicant = _applicant()
    payment = _start(applicant)

    forged = _notify(payment, event_id="EVT-forged", tamper=True)
    wrong_amount = _notify(payment, event_id="EVT-wrong", amount="5.00")
    wrong_app = _notify(payment, event_id="EVT-app", app_id="someone-else")
    assert [forged.callback.outcome, wrong_amount.callback.outcome, wrong_app.callback.outcome] == [
        CallbackOutcome.REJECTED
    ] * 3
    assert deposit_balance(applicant.pk) == Decimal("0.00")
    assert Distributor.objects.get(pk=applicant.pk).deposit_status == DepositStatus.PENDING

    first = _notify(payment)
    replay = _notify(payment)
    second_event = _notify(payment, event_id="EVT-again")

    assert first.callback.outcome == CallbackOutcome.PAID
    assert replay.callback.pk == first.callback.pk
    assert second_event.callback.outcome == CallbackOutcome.DUPLICATE
    assert deposit_balance(applicant.pk) == Decimal("500.00")
    assert JournalTransaction.objects.filter(reference=f"deposit:{payment.deposit_no}").count() == 1


@pytest.mark.parametrize(
    ("deposit", "amount", "message"),
    [
        ("0.00", "500.00", "无需缴纳保证金"),
        ("500.00", "400.00", "应缴保证金 ¥500.00，金额不符"),
        ("500.00", "abc", "不是有效金额"),
    ],
)
def test_bad_deposit_payments_are_refused_and_record_nothing(client, deposit, amount, message):
    applicant = _applicant(deposit=deposit)
    client.force_login(applicant.user)

    response = client.post(reverse("orders:agent-deposit"), {"action": "pay", "amount": amount})

    assert response.status_code == 400 and message in response.content.decode()
    assert not DepositPayment.objects.exists()
    assert not SandboxPayment.objects.exists()


def test_a_deposit_held_in_full_is_not_taken_twice():
    applicant = _applicant()
    _notify(_start(applicant))

    with pytest.raises(ValidationError) as raised:
        _start(applicant)

    assert "保证金已缴清" in " ".join(raised.value.messages)
    assert DepositPayment.objects.count() == 1


def test_the_first_order_threshold_is_reached_by_paid_orders_only_and_then_admits(client):
    applicant = _applicant(deposit="0.00", first_order="100.00", mode=AdmissionMode.AUTOMATIC)
    product = make_product(price="60.00")
    add_keys(product, 5)
    client.force_login(applicant.user)

    buy(product, buyer_user=applicant.user)  # never paid
    refunded = buy(product, buyer_user=applicant.user)
    pay(refunded)
    refund_order(order=refunded, amount="60.00", reason="不要了")
    guest_order = buy(product)  # someone else's, not attributed to the applicant
    pay(guest_order)
    short = Distributor.objects.get(pk=applicant.pk)
    page = client.get(reverse("orders:agent-deposit")).content.decode()

    assert short.status == DistributorStatus.APPLIED and short.first_order_reached_at is None
    assert "已支付订单累计 ¥0.00 / 要求 ¥100.00" in page

    pay(buy(product, buyer_user=applicant.user))
    halfway = Distributor.objects.get(pk=applicant.pk)
    pay(buy(product, buyer_user=applicant.user))
    reached = Distributor.objects.get(pk=applicant.pk)

    assert halfway.status == DistributorStatus.APPLIED
    assert reached.status == DistributorStatus.ACTIVE and reached.first_order_reached_at is not None
    assert "已支付订单累计 ¥120.00 / 要求 ¥100.00" in client.get(reverse("orders:agent-deposit")).content.decode()


def test_staff_cannot_approve_before_the_first_order_is_reached(django_user_model):
    applicant = _applicant(deposit="0.00", first_order="50.00")
    owner = django_user_model.objects.create_superuser(username="boss", password="x" * 12)
    product = make_product(price="48.00")
    add_keys(product, 2)

    pay(buy(product, buyer_user=applicant.user))
    with pytest.raises(ValidationError) as raised:
        distribution_services.approve_distributor(distributor=applicant, actor=owner)
    pay(buy(product, buyer_user=applicant.user))
    approved = distribution_services.approve_distributor(distributor=applicant, actor=owner)

    assert "首单金额达到 ¥50.00" in " ".join(raised.value.messages)
    assert approved.status == DistributorStatus.ACTIVE
