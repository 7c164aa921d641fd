"""The sandbox gateway keeps its retry schedule in its own table, as a real gateway does: a
notification whose Celery message was lost (Redis restarted empty, a dead worker) is still
delivered within seconds by the workers' loop, so the buyer's paid order goes on."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from orders.gateways import base as gateway_base
from orders.gateways.sandbox import complete_sandbox_payment, redeliver_due_sandbox_notifications
from orders.models import Order, OrderStatus, SandboxNotification

from .factories import add_keys, buy, make_product, start_sandbox

pytestmark = pytest.mark.django_db


def _deliver_to(client, answers):
    def transport(method, url, headers, body):
        extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}
        response = client.post(urlsplit(url).path, data=body, content_type="application/json", **extra)
        answers.append(response.status_code)
        return gateway_base.HttpResponse(response.status_code, {}, response.content)

    return transport


@pytest.fixture
def paid_sandbox_payment(settings, django_capture_on_commit_callbacks):
    """A buyer clicked 支付成功; the notification's Celery message never ran (lost)."""
    settings.SANDBOX_NOTIFY_DUPLICATE_PROBABILITY = 0.0
    settings.SANDBOX_NOTIFY_OUT_OF_ORDER_PROBABILITY = 0.0
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    payment = start_sandbox(order)
    with django_capture_on_commit_callbacks(execute=False):  # the enqueue is lost
        complete_sandbox_payment(trade_no=payment.trade_no, succeeded=True)
    return order


def test_a_notification_whose_message_was_lost_is_delivered_from_the_table(paid_sandbox_payment, monkeypatch):
    answers = []
    monkeypatch.setattr(gateway_base, "urllib_transport", _deliver_to(Client(), answers))
    order = paid_sandbox_payment

    # not yet overdue: the Celery message may still come
    assert redeliver_due_sandbox_notifications() == 0
    # overdue by more than the grace: the loop sends it
    later = timezone.now() + timedelta(seconds=30)
    assert redeliver_due_sandbox_notifications(now=later) == 1

    notification = SandboxNotification.objects.get()
    assert answers == [200] and notification.delivered_at is not None and notification.attempts == 1
    assert Order.objects.get(pk=order.pk).status in (OrderStatus.PAID, OrderStatus.COMPLETED)
    # delivered: never sent again
    assert redeliver_due_sandbox_notifications(now=later + timedelta(hours=1)) == 0


def test_a_refused_attempt_is_retried_on_the_sandbox_schedule_not_at_every_loop(paid_sandbox_payment, monkeypatch):
    monkeypatch.setattr(gateway_base, "urllib_transport", lambda *args: gateway_base.HttpResponse(503, {}, b"busy"))
    start = timezone.now() + timedelta(seconds=30)

    assert redeliver_due_sandbox_notifications(now=start) == 1
    # claimed and attempted: the next attempt waits for its delay (2 s after the first) plus the grace
    notification = SandboxNotification.objects.get()
    assert notification.attempts == 1 and notification.delivered_at is None
    assert notification.next_attempt_at > timezone.now()
    assert redeliver_due_sandbox_notifications(now=timezone.now()) == 0


def test_attempts_stop_when_the_sandbox_gives_up(paid_sandbox_payment, settings, monkeypatch):
    monkeypatch.setattr(gateway_base, "urllib_transport", lambda *args: gateway_base.HttpResponse(503, {}, b"busy"))
    SandboxNotification.objects.update(attempts=settings.SANDBOX_NOTIFY_MAX_ATTEMPTS)

    assert redeliver_due_sandbox_notifications(now=timezone.now() + timedelta(hours=2)) == 0
