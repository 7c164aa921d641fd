"""Queues by kind (issue 15 §2): a paid order's card keys are delivered from the "fulfilment"
queue, which never holds a network call; gateway, supplier and e-mail work goes to "io" with a
time limit; periodic jobs and the rest to "default"."""

import pytest

from kamen.celery import app
from orders import tasks
from orders.tests.factories import add_keys, buy, make_product, pay


def _queue(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_each_task_goes_to_the_queue_of_its_kind():
    assert {
        name: _queue(name)
        for name in [
            "orders.tasks.fulfil_order_task",
            "orders.tasks.sweep_stalled_orders_task",
            "orders.tasks.deliver_sandbox_notification_task",
            "orders.tasks.send_delivery_email_task",
            "orders.tasks.refund_order_task",
            "catalog.tasks.sync_supplier_prices_task",
            "orders.tasks.expire_unpaid_orders_task",
            "commissions.tasks.settle_commissions_task",
        ]
    } == {
        "orders.tasks.fulfil_order_task": "fulfilment",
        "orders.tasks.sweep_stalled_orders_task": "fulfilment",
        "orders.tasks.deliver_sandbox_notification_task": "io",
        "orders.tasks.send_delivery_email_task": "io",
        "orders.tasks.refund_order_task": "io",
        "catalog.tasks.sync_supplier_prices_task": "io",
        "orders.tasks.expire_unpaid_orders_task": "default",
        "commissions.tasks.settle_commissions_task": "default",
    }


def test_network_tasks_have_a_time_limit_well_below_the_default():
    task = app.tasks["orders.tasks.deliver_sandbox_notification_task"]

    assert task.time_limit == 60 and task.soft_time_limit == 45
    # fulfilment has limits of its own, well inside its queue's visibility timeout (ADR 0013)
    fulfil = app.tasks["orders.tasks.fulfil_order_task"]
    assert (fulfil.soft_time_limit, fulfil.time_limit) == (50, 60)


def test_a_worker_without_queues_named_consumes_all_three():
    assert {queue.name for queue in app.amqp.queues.values()} == {"fulfilment", "io", "default"}


@pytest.mark.django_db
@pytest.mark.parametrize(("product_type", "queue"), [("card_key", None), ("direct_recharge", "io")])
def test_a_paid_order_is_fulfilled_from_the_queue_of_its_kind(
    product_type, queue, monkeypatch, django_capture_on_commit_callbacks
):
    # given an order about to be paid, and the broker replaced by a list
    sent = []
    monkeypatch.setattr(tasks.fulfil_order_task, "apply_async", lambda **options: sent.append(options))
    product = make_product(product_type=product_type)
    if product_type == "card_key":
        add_keys(product, 1)
    order = buy(product, **({"recharge_target": "13800000000"} if product_type == "direct_recharge" else {}))

    # when the payment arrives
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)

    # then fulfilment is enqueued once: card keys on the task's own route (fulfilment), a
    # top-up on io, where a supplier's slow answer holds up no card-key delivery
    assert len(sent) == 1 and sent[0]["kwargs"] == {"order_id": order.pk}
    assert sent[0].get("queue") == queue
