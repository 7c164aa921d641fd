"""Task bodies are thin and safe to run twice; beat entries point at real tasks."""

from dataclasses import dataclass

import pytest
from celery.exceptions import Retry
from django.conf import settings as django_settings

import catalog.services
from orders import tasks
from orders.models import Order, OrderDelivery, OrderStatus

from .factories import add_keys, buy, make_product, pay


@pytest.mark.django_db
def test_the_fulfilment_task_delivers_once_when_run_twice():
    product = make_product()
    add_keys(product, 2)
    order = buy(product)
    pay(order)

    tasks.fulfil_order_task.apply(kwargs={"order_id": order.pk})
    tasks.fulfil_order_task.apply(kwargs={"order_id": order.pk})

    assert OrderDelivery.objects.filter(order=order).count() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED


@dataclass
class Outcome:
    status: str
    message: str = ""


@pytest.mark.django_db
def test_the_fulfilment_task_retries_a_failure_below_the_attempt_limit(monkeypatch):
    monkeypatch.setattr(catalog.services, "send_top_up", lambda **kw: Outcome("failed", "busy"), raising=False)
    product = make_product(product_type="direct_recharge", recharge_target_rule="mobile")
    order = buy(product, recharge_target="13800138000")
    pay(order)

    with pytest.raises(Retry):
        tasks.fulfil_order_task.apply(kwargs={"order_id": order.pk}, throw=True)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.FULFILLING


def test_every_orders_beat_entry_names_a_registered_task():
    names = [entry["task"] for key, entry in django_settings.CELERY_BEAT_SCHEDULE.items() if key.startswith("orders-")]

    assert len(names) == 4  # expire, sweep, query pending payments, reconcile statements (issue 18)
    for name in names:
        assert getattr(tasks, name.rsplit(".", 1)[1]).name == name


@pytest.mark.django_db
def test_the_sandbox_notification_task_retries_with_backoff_until_answered(monkeypatch):
    from orders.gateways import base as gateway_base
    from orders.gateways.sandbox import complete_sandbox_payment
    from orders.models import SandboxNotification

    from .factories import start_sandbox

    product = make_product()
    add_keys(product, 1)
    payment = start_sandbox(buy(product))
    monkeypatch.setattr(django_settings, "SANDBOX_NOTIFY_DUPLICATE_PROBABILITY", 0.0)
    monkeypatch.setattr(django_settings, "SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY", 0.0)
    complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    notification = SandboxNotification.objects.get()
    monkeypatch.setattr(gateway_base, "urllib_transport", lambda *args: gateway_base.HttpResponse(503, {}, b"busy"))
    retried = []
    monkeypatch.setattr(
        tasks.deliver_sandbox_notification_task, "retry", lambda **kw: retried.append(kw["countdown"]) or Retry()
    )

    with pytest.raises(Retry):
        tasks.deliver_sandbox_notification_task.run(notification_id=notification.pk)

    notification.refresh_from_db()
    assert retried and retried[0] >= 2
    assert notification.attempts == 1 and notification.delivered_at is None and "503" in notification.last_answer
