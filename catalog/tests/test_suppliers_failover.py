"""send_top_up: best channel first, failover, ceilings, idempotency by reference, and never a
second top-up when a supplier's answer went missing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog.models import RechargeAttemptStatus, SandboxOrder, SupplierRechargeAttempt
from catalog.services import TopUpStatus, send_top_up

from .suppliers_support import (
    RecordingTransport,
    add_channel,
    make_product,
    make_sku,
    make_supplier,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_channels():
    product = make_product(retail="100.00")
    make_sku("CM100-A", price="96.00")
    make_sku("CM100-B", price="97.00")
    first, first_account = make_supplier("甲")
    second, second_account = make_supplier("乙")
    channel_a = add_channel(product, first, "CM100-A", priority=1, cost="96.00")
    channel_b = add_channel(product, second, "CM100-B", priority=2, cost="97.00")
    return product, (channel_a, first_account), (channel_b, second_account)


def top_up(product, reference="ORD-1", transport=None, **kwargs):
    return send_top_up(product=product, reference=reference, target="13800138000", quantity=1, transport=transport or RecordingTransport(), **kwargs)


def test_the_first_healthy_channel_tops_up(two_channels):
    product, (channel_a, _), _ = two_channels

    outcome = top_up(product)

    assert outcome.status == TopUpStatus.SUCCEEDED
    assert outcome.channel == channel_a and outcome.supplier == channel_a.supplier
    assert outcome.cost == Decimal("96.00")
    assert outcome.supplier_order_no == SandboxOrder.objects.get().order_no


def test_a_failing_channel_fails_over_to_the_next(two_channels):
    product, (channel_a, account_a), (channel_b, _) = two_channels
    account_a.failure_rate = Decimal(1)
    account_a.save()

    outcome = top_up(product)

    assert outcome.status == TopUpStatus.SUCCEEDED and outcome.channel == channel_b
    statuses = list(SupplierRechargeAttempt.objects.order_by("id").values_list("channel_id", "status"))
    assert statuses == [(channel_a.pk, RechargeAttemptStatus.FAILED), (channel_b.pk, RechargeAttemptStatus.SUCCEEDED)]
    channel_a.refresh_from_db()
    assert channel_a.consecutive_failures == 1


def test_an_out_of_stock_channel_fails_over_and_is_skipped_afterwards(two_channels):
    product, (channel_a, _), (channel_b, _) = two_channels
    from catalog.models import SandboxSku

    SandboxSku.objects.filter(sku="CM100-A").update(is_out_of_stock=True)

    first = top_up(product, reference="ORD-1")
    transport = RecordingTransport()
    second = top_up(product, reference="ORD-2", transport=transport)

    assert first.channel == channel_b and second.channel == channel_b
    channel_a.refresh_from_db()
    assert channel_a.is_in_stock is False and channel_a.consecutive_failures == 0
    assert transport.count("orders") == 1


def test_a_channel_costing_more_than_its_ceiling_is_skipped(two_channels):
    product, (channel_a, _), (channel_b, _) = two_channels
    channel_a.cost_ceiling = Decimal("95.00")
    channel_a.save()

    outcome = top_up(product)

    assert outcome.channel == channel_b
    assert not SupplierRechargeAttempt.objects.filter(channel=channel_a).exists()


def test_without_a_channel_ceiling_the_retail_price_is_the_limit():
    product = make_product(retail="100.00")
    make_sku("DEAR", price="101.00")
    supplier, _ = make_supplier("贵")
    add_channel(product, supplier, "DEAR", cost="101.00")

    outcome = top_up(product)

    assert outcome.status == TopUpStatus.FAILED
    assert "高于上限 100.00" in outcome.message
    assert not SandboxOrder.objects.exists()


def test_when_every_channel_fails_nothing_is_topped_up_and_the_reasons_are_given(two_channels):
    product, (_, account_a), (_, account_b) = two_channels
    for account in (account_a, account_b):
        account.failure_rate = Decimal(1)
        account.save()

    outcome = top_up(product)

    assert outcome.status == TopUpStatus.FAILED and outcome.channel is None
    assert "甲" in outcome.message and "乙" in outcome.message


def test_the_same_reference_twice_sends_one_order(two_channels):
    product, _, _ = two_channels
    transport = RecordingTransport()

    first = top_up(product, transport=transport)
    second = top_up(product, transport=transport)

    assert first.status == second.status == TopUpStatus.SUCCEEDED
    assert first.supplier_order_no == second.supplier_order_no
    assert first.supplier.__class__.objects.get(pk=first.supplier.pk).balance is None
    assert transport.count("orders") == 1
    assert SandboxOrder.objects.count() == 1


def test_a_lost_answer_is_queried_not_resent_elsewhere(two_channels):
    product, (channel_a, _), _ = two_channels
    transport = RecordingTransport(lose_answers_to={"orders"})

    outcome = top_up(product, transport=transport)

    assert outcome.status == TopUpStatus.SUCCEEDED and outcome.channel == channel_a
    assert transport.calls == ["orders", "orders/query"]
    assert SandboxOrder.objects.count() == 1


def test_a_top_up_still_unknown_stays_pending_and_is_settled_by_the_next_call(two_channels):
    product, (channel_a, _), _ = two_channels
    silent = RecordingTransport(lose_answers_to={"orders", "orders/query"})

    pending = top_up(product, transport=silent)
    later = RecordingTransport()
    settled = top_up(product, transport=later)

    assert pending.status == TopUpStatus.PENDING and pending.channel == channel_a
    assert settled.status == TopUpStatus.SUCCEEDED and settled.channel == channel_a
    assert later.calls == ["orders/query"]
    assert SandboxOrder.objects.count() == 1


def lost_attempt(product, channel, *, sent_ago):
    attempt = SupplierRechargeAttempt.objects.create(
        reference="ORD-9", channel=channel, supplier=channel.supplier, product=product,
        out_order_no=f"ORD-9-C{channel.pk}", target="13800138000", quantity=1, status=RechargeAttemptStatus.PENDING,
    )
    SupplierRechargeAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - sent_ago)


def test_an_order_the_supplier_never_received_moves_on_to_the_next_channel(two_channels):
    product, (channel_a, _), (channel_b, _) = two_channels
    lost_attempt(product, channel_a, sent_ago=timedelta(minutes=5))

    outcome = top_up(product, reference="ORD-9")

    assert outcome.status == TopUpStatus.SUCCEEDED and outcome.channel == channel_b
    assert SupplierRechargeAttempt.objects.get(channel=channel_a).status == RechargeAttemptStatus.FAILED


def test_an_order_sent_moments_ago_and_not_found_yet_stays_pending(two_channels):
    product, (channel_a, _), _ = two_channels
    lost_attempt(product, channel_a, sent_ago=timedelta(seconds=1))
    transport = RecordingTransport()

    outcome = top_up(product, reference="ORD-9", transport=transport)

    assert outcome.status == TopUpStatus.PENDING and outcome.channel == channel_a
    assert transport.calls == ["orders/query"]
    assert SupplierRechargeAttempt.objects.get(channel=channel_a).status == RechargeAttemptStatus.PENDING


def test_a_supplier_still_processing_is_queried_and_succeeds(two_channels):
    product, (channel_a, account_a), _ = two_channels
    account_a.pending_rate = Decimal(1)
    account_a.save()
    transport = RecordingTransport()

    outcome = top_up(product, transport=transport)

    assert outcome.status == TopUpStatus.SUCCEEDED and outcome.channel == channel_a
    assert transport.calls == ["orders", "orders/query"]


def test_bad_input_is_refused_before_anything_is_sent(two_channels):
    product, _, _ = two_channels

    with pytest.raises(ValidationError) as no_reference:
        send_top_up(product=product, reference="", target="13800138000", quantity=1)
    with pytest.raises(ValidationError) as zero:
        send_top_up(product=product, reference="ORD-1", target="13800138000", quantity=0)

    assert "reference" in no_reference.value.message_dict
    assert "quantity" in zero.value.message_dict
    assert not SupplierRechargeAttempt.objects.exists()


def test_a_reference_cannot_be_reused_for_another_product(two_channels):
    product, _, _ = two_channels
    top_up(product)
    other = make_product()

    with pytest.raises(ValidationError) as error:
        top_up(other)

    assert "reference" in error.value.message_dict


# --- circuit breaker -----------------------------------------------------------------------------
def test_three_failures_open_the_circuit_which_closes_after_a_successful_trial(two_channels, settings):
    settings.SUPPLIER_CIRCUIT_FAILURES, settings.SUPPLIER_CIRCUIT_COOLDOWN_SECONDS = 3, 60
    product, (channel_a, account_a), (channel_b, _) = two_channels
    account_a.failure_rate = Decimal(1)
    account_a.save()
    start = timezone.now()

    for number in range(3):
        top_up(product, reference=f"F-{number}", now=start)
    while_open = RecordingTransport()
    skipped = top_up(product, reference="OPEN", now=start + timedelta(seconds=30), transport=while_open)
    channel_a.refresh_from_db()
    assert channel_a.circuit_open_until == start + timedelta(seconds=60)
    assert skipped.channel == channel_b and while_open.count("orders") == 1
    assert channel_a.supplier.alerts.filter(kind="channel_circuit_open", resolved_at__isnull=True).count() == 1

    account_a.failure_rate = Decimal(0)
    account_a.save()
    trial = top_up(product, reference="TRIAL", now=start + timedelta(seconds=61))

    channel_a.refresh_from_db()
    assert trial.channel == channel_a
    assert channel_a.consecutive_failures == 0 and channel_a.circuit_open_until is None
    assert not channel_a.supplier.alerts.filter(resolved_at__isnull=True).exists()


def test_a_failed_half_open_trial_reopens_the_circuit(two_channels, settings):
    settings.SUPPLIER_CIRCUIT_FAILURES, settings.SUPPLIER_CIRCUIT_COOLDOWN_SECONDS = 2, 60
    product, (channel_a, account_a), (channel_b, _) = two_channels
    account_a.failure_rate = Decimal(1)
    account_a.save()
    start = timezone.now()
    for number in range(2):
        top_up(product, reference=f"F-{number}", now=start)

    trial = top_up(product, reference="TRIAL", now=start + timedelta(seconds=61))

    channel_a.refresh_from_db()
    assert trial.channel == channel_b
    assert SupplierRechargeAttempt.objects.get(reference="TRIAL", channel=channel_a).status == RechargeAttemptStatus.FAILED
    assert channel_a.circuit_open_until == start + timedelta(seconds=121)
    assert channel_a.supplier.alerts.filter(kind="channel_circuit_open").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_for_one_reference_top_up_once():
    import threading

    from django.db import connection

    product = make_product(retail="100.00")
    make_sku("CM100-A", price="96.00")
    make_sku("CM100-B", price="97.00")
    first, _ = make_supplier("甲")
    second, _ = make_supplier("乙")
    add_channel(product, first, "CM100-A", priority=1, cost="96.00")
    add_channel(product, second, "CM100-B", priority=2, cost="97.00")
    barrier = threading.Barrier(4)
    outcomes = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(top_up(product, reference="RACE-1"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert SandboxOrder.objects.count() == 1
    assert SupplierRechargeAttempt.objects.filter(reference="RACE-1").count() == 1
    assert sorted(outcome.status for outcome in outcomes).count(TopUpStatus.SUCCEEDED) >= 1
    assert {outcome.status for outcome in outcomes} <= {TopUpStatus.SUCCEEDED, TopUpStatus.PENDING}


def test_only_one_caller_wins_the_half_open_trial(two_channels):
    from catalog.services.suppliers import _claim_half_open_trial

    _, (channel_a, _), _ = two_channels
    cooled_down = timezone.now() - timedelta(seconds=1)
    type(channel_a).objects.filter(pk=channel_a.pk).update(consecutive_failures=3, circuit_open_until=cooled_down)
    seen_by_first = type(channel_a).objects.get(pk=channel_a.pk)
    seen_by_second = type(channel_a).objects.get(pk=channel_a.pk)

    first = _claim_half_open_trial(seen_by_first, timezone.now())
    second = _claim_half_open_trial(seen_by_second, timezone.now())

    assert (first, second) == (True, False)
