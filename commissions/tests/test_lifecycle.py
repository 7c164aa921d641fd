from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from commissions import selectors
from commissions.models import CommissionStatus, SettlementRun, WalletHold
from commissions.services import (
    freeze_commissions,
    release_commissions,
    reverse_commissions,
    run_settlement,
    split_commissions,
)
from commissions.services.lifecycle import settlement_key

from .factories import make_chain, make_order, refund

LATER = timezone.now() + timedelta(days=8)


def _wallets(*distributors):
    return [tuple(selectors.wallet(d).values()) for d in distributors]


@pytest.mark.django_db
def test_commissions_wait_for_the_product_types_hold_then_settle_once():
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    split_commissions(order=make_order(seller, product_type="manual"))  # T+7

    early = run_settlement(cycle="daily", now=timezone.now() + timedelta(days=2))
    assert early.commission_count == 0 and early.pk is None  # nothing due: no run recorded
    run = run_settlement(cycle="daily", now=LATER)
    again = run_settlement(cycle="daily", now=LATER)

    assert run.pk == again.pk
    assert run.commission_count == 2 and run.total_amount == Decimal("15.00")
    assert _wallets(seller, parent) == [
        (Decimal("0.00"), Decimal("10.00"), Decimal("0.00")),
        (Decimal("0.00"), Decimal("5.00"), Decimal("0.00")),
    ]
    assert SettlementRun.objects.count() == 1


@pytest.mark.django_db
def test_settlement_keys_name_the_period():
    moment = timezone.make_aware(timezone.datetime(2026, 11, 23, 10, 0))
    assert [
        settlement_key(cycle, moment) for cycle in ("daily", "weekly", "monthly")
    ] == [
        "daily:2026-11-23",
        "weekly:2026-W48",
        "monthly:2026-11",
    ]


@pytest.mark.django_db
def test_a_refund_before_settlement_cancels_the_commissions():
    seller, parent = make_chain(2)
    order = make_order(seller)
    split_commissions(order=order)

    reverse_commissions(order=refund(order, "100.00"))

    assert {c.status for c in order.commissions.all()} == {CommissionStatus.CANCELLED}
    assert _wallets(seller, parent) == [(Decimal("0.00"),) * 3] * 2


@pytest.mark.django_db
def test_a_refund_after_withdrawal_claws_back_every_level_and_may_go_negative():
    seller, parent = make_chain(2, rates=(1000, 500, 0))
    order = make_order(seller)
    split_commissions(order=order)
    run_settlement(cycle="daily", now=LATER)
    from commissions.services import pay_from_wallet

    pay_from_wallet(distributor=seller, amount=Decimal("10.00"), reference="spent")

    reverse_commissions(order=refund(order, "100.00"))

    assert selectors.wallet(seller)["available"] == Decimal("-10.00")
    assert selectors.wallet(parent)["available"] == Decimal("0.00")


@pytest.mark.django_db
def test_partial_refunds_reverse_proportionally_and_repeats_reverse_once():
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    order = make_order(seller, paid="100.00")
    split_commissions(order=order)

    refund(order, "30.00")
    reverse_commissions(order=order)
    reverse_commissions(order=order)
    assert selectors.wallet(seller)["pending"] == Decimal("7.00")

    reverse_commissions(order=refund(order, "70.00"))
    assert selectors.wallet(seller)["pending"] == Decimal("0.00")


@pytest.mark.django_db
def test_a_risk_hold_freezes_pending_and_available_and_blocks_settlement_until_released(
    owner_user,
):
    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    split_commissions(order=make_order(seller))
    run_settlement(cycle="daily", now=LATER)
    split_commissions(order=make_order(seller))

    hold = freeze_commissions(distributor=seller, reason="异常订单", actor=owner_user)
    assert (
        freeze_commissions(distributor=seller, reason="again", actor=owner_user).pk
        == hold.pk
    )
    assert _wallets(seller) == [(Decimal("0.00"), Decimal("0.00"), Decimal("20.00"))]
    assert (
        run_settlement(cycle="weekly", now=LATER + timedelta(days=1)).commission_count
        == 0
    )

    release_commissions(distributor=seller, actor=owner_user)

    assert _wallets(seller) == [(Decimal("10.00"), Decimal("10.00"), Decimal("0.00"))]
    assert not WalletHold.objects.filter(is_active=True).exists()


@pytest.mark.django_db
def test_a_freeze_needs_a_reason(owner_user):
    seller, *_rest = make_chain(1)
    with pytest.raises(ValidationError, match="冻结原因"):
        freeze_commissions(distributor=seller, reason=" ", actor=owner_user)
    assert not WalletHold.objects.exists()


@pytest.mark.django_db
def test_the_split_and_the_refund_reversal_orders_calls_are_harmless_twice():
    from orders.services.refunds import reverse_order_commissions

    seller, *_rest = make_chain(1, rates=(1000, 0, 0))
    order = make_order(seller)

    split_commissions(order=order)
    split_commissions(order=order)  # a second call finds the rows
    assert selectors.wallet(seller)["pending"] == Decimal("10.00")

    refunded = refund(order, "50.00")
    reverse_order_commissions(order=refunded)
    reverse_order_commissions(order=refunded)
    assert selectors.wallet(seller)["pending"] == Decimal("5.00")


@pytest.mark.django_db(transaction=True)
def test_two_settlement_runs_at_the_same_moment_settle_once():
    import threading

    from django.db import connection

    seller, parent = make_chain(2, rates=(1000, 500, 0))
    for _n in range(5):
        split_commissions(order=make_order(seller))
    barrier = threading.Barrier(2)
    results = []

    def settle(cycle):
        try:
            barrier.wait()
            results.append(run_settlement(cycle=cycle, now=LATER).commission_count)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=settle, args=(cycle,)) for cycle in ("daily", "daily")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [10, 10]  # the loser gets the winner's run
    assert SettlementRun.objects.count() == 1
    assert selectors.wallet(seller)["available"] == Decimal("50.00")
    assert selectors.wallet(parent)["available"] == Decimal("25.00")


@pytest.mark.django_db(transaction=True)
def test_two_splits_of_one_order_at_the_same_moment_pay_once():
    import threading

    from django.db import connection

    from commissions.models import Commission, JournalTransaction

    seller, _parent = make_chain(2, rates=(1000, 500, 0))
    order = make_order(seller)
    barrier = threading.Barrier(2)

    def split():
        try:
            barrier.wait()
            split_commissions(order=order)
        finally:
            connection.close()

    threads = [threading.Thread(target=split) for _n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Commission.objects.filter(order=order).count() == 2
    assert (
        JournalTransaction.objects.filter(reference=f"accrual:order:{order.pk}").count()
        == 1
    )
    assert selectors.wallet(seller)["pending"] == Decimal("10.00")
