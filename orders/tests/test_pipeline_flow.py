"""The happy path and its idempotency: checkout → callback → fulfilment, each once."""

import pytest
from django.core import mail

from catalog.models import CardKey, CardKeyStatus
from orders.models import (
    CallbackOutcome,
    Order,
    OrderDelivery,
    OrderStatus,
    PaymentCallback,
)
from orders.services import fulfil_order
from orders.tasks import send_delivery_email_task

from .factories import add_keys, buy, make_product, pay

mail_send_mail = mail.send_mail


@pytest.mark.django_db
def test_a_paid_order_gets_its_reserved_key_and_an_email(django_capture_on_commit_callbacks, monkeypatch, settings):
    # given a product with stock and an order for one key
    settings.ORDER_DELIVERY_EMAIL_INCLUDES_SECRETS = True
    product = make_product()
    add_keys(product, 3)
    order = buy(product)
    reserved = CardKey.objects.get(status=CardKeyStatus.RESERVED)
    assert reserved.reserved_for == order.order_no

    # when the gateway says it was paid and the fulfilment task runs
    enqueued = []
    monkeypatch.setattr(
        "orders.services.enqueue.run_task_now_or_enqueue", lambda name, **kw: enqueued.append((name, kw)) or True
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = pay(order)
    assert result.accepted and result.answer.body == "success"
    assert enqueued == [("fulfil_order_task", {"order_id": order.pk})]
    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)
    assert enqueued == [("fulfil_order_task", {"order_id": order.pk})]  # the e-mail went at once

    # then the reserved key is the one delivered, and the buyer got an email with a link
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    delivery = OrderDelivery.objects.get(order=order)
    assert delivery.card_key_id == reserved.pk
    reserved.refresh_from_db()
    assert (reserved.status, reserved.sold_to) == (CardKeyStatus.SOLD, order.order_no)
    assert len(mail.outbox) == 1
    assert f"/orders/{order.order_no}/?t=" in mail.outbox[0].body
    assert "KEY-" in mail.outbox[0].body


@pytest.mark.django_db
def test_running_fulfilment_twice_delivers_once():
    product = make_product()
    add_keys(product, 5)
    order = buy(product, quantity=2)
    pay(order)

    fulfil_order(order_id=order.pk)
    fulfil_order(order_id=order.pk)

    assert OrderDelivery.objects.filter(order=order).count() == 2
    assert CardKey.objects.filter(status=CardKeyStatus.SOLD).count() == 2
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED


@pytest.mark.django_db
def test_a_replayed_callback_gets_the_earlier_answer_and_changes_nothing():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    first = pay(order)

    again = pay(order)

    assert again.callback.pk == first.callback.pk
    assert again.answer.body == "success"
    assert PaymentCallback.objects.get().times_received == 2
    assert Order.objects.get(pk=order.pk).status_changes.filter(new_status=OrderStatus.PAID).count() == 1


@pytest.mark.django_db
def test_a_second_distinct_success_event_is_a_duplicate_not_a_second_payment():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order, event_id="EVT-1")

    second = pay(order, event_id="EVT-2")

    assert second.callback.outcome == CallbackOutcome.DUPLICATE
    assert second.accepted
    assert Order.objects.get(pk=order.pk).status_changes.filter(new_status=OrderStatus.PAID).count() == 1


@pytest.mark.django_db
def test_a_stale_pending_event_after_payment_is_ignored():
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    stale = pay(order, event_id="EVT-stale", status="pending")

    assert stale.callback.outcome == CallbackOutcome.IGNORED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_the_email_can_carry_only_the_link(django_capture_on_commit_callbacks, settings):
    settings.ORDER_DELIVERY_EMAIL_INCLUDES_SECRETS = False
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)

    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)
    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)

    assert len(mail.outbox) == 1
    assert "KEY-" not in mail.outbox[0].body and f"/orders/{order.order_no}/?t=" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_failing_mail_server_does_not_hold_up_the_delivery_and_the_email_is_retried(
    django_capture_on_commit_callbacks, monkeypatch, settings
):
    from celery.exceptions import Retry

    settings.CELERY_TASK_ALWAYS_EAGER = False
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    queued = []
    monkeypatch.setattr(
        "orders.services.enqueue.run_task_now_or_enqueue", lambda name, **kw: queued.append((name, kw)) or True
    )

    def refuse(**kwargs):
        raise ConnectionRefusedError("smtp down")

    # when the mail server refuses the send right after the delivery
    monkeypatch.setattr("orders.services.fulfilment.send_mail", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)

    # then the goods are delivered all the same, the claim is given back, a retry is queued
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED and order.delivery_emailed_at is None
    assert queued == [("send_delivery_email_task", {"order_id": order.pk})] and not mail.outbox
    with pytest.raises(Retry):  # still down: the task retries with backoff
        send_delivery_email_task.apply(kwargs=queued[0][1], throw=True)
    assert Order.objects.get(pk=order.pk).delivery_emailed_at is None

    # and once the server is back the retry sends it, once, however often it runs
    monkeypatch.setattr("orders.services.fulfilment.send_mail", mail_send_mail)
    send_delivery_email_task.apply(kwargs=queued[0][1])
    send_delivery_email_task.apply(kwargs=queued[0][1])
    assert len(mail.outbox) == 1
    assert Order.objects.get(pk=order.pk).delivery_emailed_at is not None


@pytest.mark.django_db
def test_an_email_that_fails_before_the_send_gives_its_claim_back(django_capture_on_commit_callbacks, monkeypatch):
    product = make_product()
    add_keys(product, 1)
    order = buy(product)
    pay(order)
    monkeypatch.setattr("orders.services.enqueue.run_task_now_or_enqueue", lambda name, **kw: True)
    monkeypatch.setattr("orders.services.fulfilment.order_link", lambda order: 1 / 0)  # building it fails

    with django_capture_on_commit_callbacks(execute=True):
        fulfil_order(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert order.delivery_emailed_at is None and not mail.outbox  # a retry can claim and send it
