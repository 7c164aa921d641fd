"""Fulfilment beyond the happy path: stalls, back-orders, product types, failure policies."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

import catalog.selectors
import catalog.services
from catalog.models import BundleItem, CardKey, CardKeyStatus, ProductType
from catalog.services import InsufficientStock
from catalog.signals import card_keys_imported
from orders.models import DeliveryKind, Order, OrderDelivery, OrderStatus, Refund
from orders.selectors import deliveries_for_buyer
from orders.services import (
    FulfilmentPending,
    deliver_manually,
    expire_unpaid_orders,
    fulfil_order,
    sweep_stalled_orders,
    transition_order,
)

from .factories import add_keys, buy, make_product, pay


def _age(order, minutes):
    Order.objects.filter(pk=order.pk).update(status_changed_at=timezone.now() - timedelta(minutes=minutes))


@pytest.mark.django_db
def test_an_order_left_paid_with_no_task_is_completed_by_the_sweeper():
    # given a paid order whose task was lost (broker down at enqueue time)
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    _age(order, 30)

    # when the sweeper runs
    counts = sweep_stalled_orders()

    # then it is delivered
    assert counts["redriven"] == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_a_worker_killed_mid_fulfilment_is_completed_by_the_sweeper():
    # given an order the worker moved to FULFILLING before it was killed (its transaction
    # delivering the keys never committed)
    product = make_product()
    add_keys(product, 2)
    order = buy(product, quantity=2)
    pay(order)
    transition_order(order=order, to_status=OrderStatus.FULFILLING, cause="worker started")
    _age(order, 30)

    sweep_stalled_orders()

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order).count() == 2


@pytest.mark.django_db
def test_a_fresh_paid_order_is_left_to_its_task():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    assert sweep_stalled_orders()["redriven"] == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_expiry_releases_reservations():
    product = make_product()
    add_keys(product, 2)
    order = buy(product, quantity=2)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert expire_unpaid_orders() == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.EXPIRED
    assert CardKey.objects.filter(status=CardKeyStatus.AVAILABLE, reserved_for="").count() == 2


@pytest.mark.django_db
def test_a_late_payment_is_fulfilled_when_stock_allows():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expire_unpaid_orders()

    result = pay(order)
    fulfil_order(order_id=order.pk)

    assert result.accepted
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED


@pytest.mark.django_db
def test_a_late_payment_without_stock_is_refunded(django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    product = make_product()
    add_keys(product, 1)
    late = buy(product)
    Order.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expire_unpaid_orders()
    other = buy(product, contact="other@example.com")  # takes the only key

    with django_capture_on_commit_callbacks(execute=True):
        pay(late)

    late.refresh_from_db()
    assert late.status == OrderStatus.REFUNDED
    assert late.refunded_amount == late.paid_amount
    assert CardKey.objects.get().reserved_for == other.order_no


@pytest.mark.django_db
def test_paid_but_out_of_stock_waits_and_is_fulfilled_oldest_first_on_import(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the back-order task runs where the signal fires
    # given two paid orders whose keys were taken by someone else (reservations lapsed)
    product = make_product()
    add_keys(product, 2)
    older, newer = buy(product), buy(product, contact="two@example.com")
    pay(older)
    pay(newer)
    catalog.services.release_card_key_reservation(reference=older.order_no)
    catalog.services.release_card_key_reservation(reference=newer.order_no)
    catalog.services.claim_card_keys(product=product, quantity=2)
    fulfil_order(order_id=older.pk)
    fulfil_order(order_id=newer.pk)
    assert Order.objects.get(pk=older.pk).status == OrderStatus.BACKORDERED

    # when one new key is imported
    add_keys(product, 1, prefix="NEW")
    card_keys_imported.send(sender=CardKey, product=product, count=1)

    # then the older order gets it and the newer keeps waiting
    assert Order.objects.get(pk=older.pk).status == OrderStatus.COMPLETED
    assert Order.objects.get(pk=newer.pk).status == OrderStatus.BACKORDERED
    assert not OrderDelivery.objects.filter(order=newer).exists()


@pytest.mark.django_db
def test_a_back_order_past_the_waiting_limit_is_refunded(settings):
    settings.ORDER_BACKORDER_MAX_HOURS = 1
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    catalog.services.release_card_key_reservation(reference=order.order_no)
    catalog.services.claim_card_keys(product=product, quantity=1)
    fulfil_order(order_id=order.pk)
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - timedelta(hours=2))

    assert sweep_stalled_orders()["backorders_refunded"] == 1

    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED and order.refunded_amount == order.paid_amount


@pytest.mark.django_db
def test_a_manual_order_waits_for_staff_then_completes(owner_user):
    product = make_product(product_type=ProductType.MANUAL)
    order = buy(product)
    pay(order)
    fulfil_order(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.FULFILLING

    with pytest.raises(ValidationError):
        deliver_manually(order=order, content="  ", actor=owner_user)
    deliver_manually(order=order, content="会员已开通：账号 138****8000", actor=owner_user)

    order = Order.objects.get(pk=order.pk)
    assert order.status == OrderStatus.COMPLETED
    assert deliveries_for_buyer(order=order)[0]["secret"] == "会员已开通：账号 138****8000"


@pytest.mark.django_db
def test_a_bundle_delivers_its_card_keys_and_waits_for_its_manual_part(owner_user):
    steam = make_product()
    add_keys(steam, 3)
    vip = make_product(product_type=ProductType.MANUAL)
    bundle = make_product(product_type=ProductType.BUNDLE, price="66.00")
    BundleItem.objects.create(bundle=bundle, component=steam, quantity=2)
    BundleItem.objects.create(bundle=bundle, component=vip, quantity=1)
    order = buy(bundle)
    pay(order)

    fulfil_order(order_id=order.pk)
    assert OrderDelivery.objects.filter(order=order, kind=DeliveryKind.CARD_KEY).count() == 2
    assert Order.objects.get(pk=order.pk).status == OrderStatus.FULFILLING

    deliver_manually(order=order, content="VIP OK", actor=owner_user)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.filter(order=order).count() == 3


@dataclass
class Outcome:
    status: str
    message: str = ""


def _top_up_product():
    return make_product(product_type=ProductType.DIRECT_RECHARGE, recharge_target_rule="mobile", price="98.50")


@pytest.mark.django_db
def test_a_top_up_is_sent_once_with_the_order_reference(monkeypatch):
    calls = []

    def send_top_up(*, product, reference, target, quantity):
        calls.append((reference, target, quantity))
        return Outcome("succeeded", "到账成功")

    monkeypatch.setattr(catalog.services, "send_top_up", send_top_up, raising=False)
    order = buy(_top_up_product(), recharge_target="13800138000")
    pay(order)

    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    assert calls == [(order.order_no, "13800138000", 1)]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert OrderDelivery.objects.get(order=order).message == "到账成功"


@pytest.mark.django_db
def test_a_pending_top_up_keeps_the_order_fulfilling(monkeypatch):
    monkeypatch.setattr(catalog.services, "send_top_up", lambda **kw: Outcome("pending"), raising=False)
    order = buy(_top_up_product(), recharge_target="13800138000")
    pay(order)

    fulfil_order(order_id=order.pk)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.FULFILLING


@pytest.mark.parametrize(("policy", "final_status"), [("staff", OrderStatus.FAILED), ("refund", OrderStatus.REFUNDED)])
@pytest.mark.django_db
def test_a_failed_top_up_retries_then_follows_the_policy(monkeypatch, settings, django_capture_on_commit_callbacks, policy, final_status):
    settings.ORDER_FULFILMENT_MAX_ATTEMPTS = 2
    settings.ORDER_FULFILMENT_FAILURE_POLICY = policy
    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr(catalog.services, "send_top_up", lambda **kw: Outcome("failed", "账号不存在"), raising=False)
    order = buy(_top_up_product(), recharge_target="13800138000")
    pay(order)

    with pytest.raises(FulfilmentPending):
        fulfil_order(order_id=order.pk)
    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == final_status
    assert "账号不存在" in order.last_fulfilment_error
    assert Refund.objects.filter(order=order).exists() == (policy == "refund")


@pytest.mark.django_db
def test_a_reusable_key_is_claimed_through_the_catalog(monkeypatch):
    monkeypatch.setattr(catalog.selectors, "is_reusable_key_product", lambda product: True, raising=False)
    monkeypatch.setattr(
        catalog.services, "claim_reusable_key", lambda *, product, quantity, reference: "SHARED-SECRET", raising=False
    )
    order = buy(make_product())
    pay(order)

    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    order = Order.objects.get(pk=order.pk)
    assert order.status == OrderStatus.COMPLETED
    assert [item["secret"] for item in deliveries_for_buyer(order=order)] == ["SHARED-SECRET"]


@pytest.mark.django_db
def test_a_reusable_key_at_its_cap_backorders(monkeypatch):
    product = make_product()

    def at_cap(**kwargs):
        raise InsufficientStock(product, 1, 0)

    monkeypatch.setattr(catalog.selectors, "is_reusable_key_product", lambda product: True, raising=False)
    monkeypatch.setattr(catalog.services, "claim_reusable_key", at_cap, raising=False)
    order = buy(product)
    pay(order)

    fulfil_order(order_id=order.pk)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.BACKORDERED


@pytest.mark.django_db
def test_a_real_card_key_import_fulfils_the_back_order(owner_user, settings, django_capture_on_commit_callbacks):
    from catalog.services import (
        confirm_card_key_import,
        run_card_key_import,
        start_card_key_import,
        validate_card_key_import,
    )

    settings.CELERY_TASK_ALWAYS_EAGER = True
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    catalog.services.release_card_key_reservation(reference=order.order_no)
    catalog.services.claim_card_keys(product=product, quantity=1)
    fulfil_order(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.BACKORDERED

    with django_capture_on_commit_callbacks(execute=True):
        job = start_card_key_import(product=product, actor=owner_user, text="NEW-1,IMPORTED-SECRET", separator=",")
    validate_card_key_import(import_id=job.pk)
    job.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        confirm_card_key_import(import_job=job, actor=owner_user)
    with django_capture_on_commit_callbacks(execute=True):
        run_card_key_import(import_id=job.pk)

    order = Order.objects.get(pk=order.pk)
    assert order.status == OrderStatus.COMPLETED
    assert [item["secret"] for item in deliveries_for_buyer(order=order)] == ["IMPORTED-SECRET"]


@pytest.mark.django_db
def test_a_payment_after_the_window_but_before_the_expiry_job_is_handled_like_a_late_one(
    settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    product = make_product()
    add_keys(product, 1)
    slow = buy(product)
    past = timezone.now() - timedelta(minutes=1)
    Order.objects.filter(pk=slow.pk).update(expires_at=past)
    CardKey.objects.filter(reserved_for=slow.order_no).update(reserved_until=past)
    quick = buy(product, contact="quick@example.com")  # the lapsed key goes to the next buyer

    with django_capture_on_commit_callbacks(execute=True):
        pay(slow)

    assert Order.objects.get(pk=slow.pk).status == OrderStatus.REFUNDED
    assert CardKey.objects.get().reserved_for == quick.order_no


@pytest.mark.django_db
def test_the_sweeper_serves_back_orders_whose_keys_arrived_without_an_import():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    catalog.services.release_card_key_reservation(reference=order.order_no)
    catalog.services.claim_card_keys(product=product, quantity=1)
    fulfil_order(order_id=order.pk)
    changes_before = order.status_changes.count()

    assert sweep_stalled_orders()["backorders_fulfilled"] == 0
    assert order.status_changes.count() == changes_before  # no stock: not even tried
    add_keys(product, 1, prefix="HAND")
    assert sweep_stalled_orders()["backorders_fulfilled"] == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
