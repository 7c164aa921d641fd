"""The open API's happy paths (issue 17 §1): catalog at the site's price, an order paid from the
prepaid balance through the journal and delivered by the shop's own pipeline, idempotency on
the site's order number, the goods to the buying site only, balance and statement, refunds."""

from decimal import Decimal
from unittest import mock

import pytest

from commissions.models import AccountKind, JournalEntry, JournalTransaction
from commissions.services.prepaid import prepaid_balance
from distribution.models import GradeVolumeTier
from kamen.models import AuditLogEntry
from orders.api.models import ApiRefundRequest, DockingOrder
from orders.models import Order, OrderStatus
from orders.services.fulfilment import fulfil_order

from .docking_support import docked_site, owner, signed_call
from .factories import add_keys, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return owner(django_user_model)


@pytest.fixture
def product():
    made = make_product(price="100.00", cost_price=Decimal("50.00"))
    add_keys(made, 5, prefix="API")
    return made


def _order(client, docked, product, client_order_no="C-1", quantity=1):
    payload = {"product_id": product.pk, "quantity": quantity, "client_order_no": client_order_no}
    return signed_call(client, docked, "POST", "/api/v1/orders", payload)


def test_the_catalog_shows_the_callers_grade_price_and_live_stock(client, staff, product):
    docked = docked_site(staff=staff, discount_bp=8000)

    response = signed_call(client, docked, "GET", "/api/v1/products?limit=10")

    assert response.status_code == 200, response.content
    item = next(i for i in response.json()["items"] if i["id"] == product.pk)
    assert item["price"] == "80.00"  # 八折 of 100.00
    assert item["stock"] == 5 and item["in_stock"] is True


def test_the_catalog_pages_with_a_cursor_and_filters_by_updated_since(client, staff, product):
    second = make_product(price="10.00")
    docked = docked_site(staff=staff)

    first_page = signed_call(client, docked, "GET", "/api/v1/products?limit=1").json()
    second_page = signed_call(
        client, docked, "GET", f"/api/v1/products?limit=1&cursor={first_page['next_cursor']}"
    ).json()
    future = signed_call(client, docked, "GET", "/api/v1/products?updated_since=2999-01-01T00:00:00%2B08:00").json()

    assert [i["id"] for i in first_page["items"]] == [product.pk]
    assert [i["id"] for i in second_page["items"]] == [second.pk]
    assert future["items"] == []


def test_an_order_is_paid_from_the_prepaid_balance_through_the_journal_and_delivered(
    client, staff, product, django_capture_on_commit_callbacks
):
    docked = docked_site(staff=staff, prepaid="1000.00")

    with mock.patch("orders.services.enqueue.run_task_now_or_enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            response = _order(client, docked, product, quantity=2)
    order = Order.objects.get(order_no=response.json()["order_no"])
    fulfil_order(order_id=order.pk)  # what the enqueued task runs
    shown = signed_call(client, docked, "GET", "/api/v1/orders/C-1").json()

    assert response.status_code == 201, response.content
    assert response.json()["total_amount"] == "160.00"
    assert enqueue.call_args.args[0] == "fulfil_order_task"  # the shop's own pipeline
    assert prepaid_balance(docked.site.distributor_id) == Decimal("840.00")
    payment = JournalTransaction.objects.get(reference=f"prepaid-payment:{order.order_no}")
    sides = {
        (e.account.kind, e.side, e.amount)
        for e in JournalEntry.objects.filter(transaction=payment).select_related("account")
    }
    assert sides == {
        (AccountKind.DOCKING_PREPAID, "debit", Decimal("160.00")),
        (AccountKind.MERCHANT_REVENUE, "credit", Decimal("160.00")),
    }
    assert shown["status"] == OrderStatus.COMPLETED
    assert len(shown["goods"]) == 2 and all(g["secret"].startswith("API-") for g in shown["goods"])


def test_volume_tiers_of_the_grade_apply_to_api_orders(client, staff, product):
    docked = docked_site(staff=staff, discount_bp=8000)
    GradeVolumeTier.objects.create(grade=docked.site.distributor.grade, min_quantity=3, rate_bp=9000)

    response = _order(client, docked, product, quantity=3)

    assert response.json()["unit_price"] == "72.00"  # 80.00 × 90 %


def test_the_same_client_order_no_twice_is_one_order_and_one_debit(client, staff, product):
    docked = docked_site(staff=staff)

    first = _order(client, docked, product)
    second = _order(client, docked, product)

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["order_no"] == second.json()["order_no"]
    assert DockingOrder.objects.count() == 1
    assert prepaid_balance(docked.site.distributor_id) == Decimal("920.00")


def test_goods_are_never_written_to_the_audit_log(client, staff, product):
    docked = docked_site(staff=staff)
    order_no = _order(client, docked, product).json()["order_no"]
    fulfil_order(order_id=Order.objects.get(order_no=order_no).pk)

    secrets = [g["secret"] for g in signed_call(client, docked, "GET", "/api/v1/orders/C-1").json()["goods"]]
    logged = " ".join(str(entry.changes) + entry.target_repr for entry in AuditLogEntry.objects.all())

    assert secrets and not any(secret in logged for secret in secrets)
    assert AuditLogEntry.objects.filter(action="api.order_read", actor_name=f"api:{docked.key.key_id}").exists()


def test_every_use_of_a_key_is_audited_and_shows_its_last_use(client, staff, product):
    docked = docked_site(staff=staff)

    signed_call(client, docked, "GET", "/api/v1/balance")
    docked.key.refresh_from_db()

    assert docked.key.last_used_at is not None
    assert AuditLogEntry.objects.filter(action="api.balance_read", actor_name=f"api:{docked.key.key_id}").count() == 1


def test_balance_and_statement_show_top_up_and_payment(client, staff, product):
    docked = docked_site(staff=staff, prepaid="500.00", credit_limit="100.00")
    _order(client, docked, product)

    balance = signed_call(client, docked, "GET", "/api/v1/balance").json()
    statement = signed_call(client, docked, "GET", "/api/v1/statement").json()

    assert balance == {"balance": "420.00", "credit_limit": "100.00", "available": "520.00", "currency": "CNY"}
    assert [line["amount"] for line in statement["items"]] == ["500.00", "-80.00"]


def test_a_refund_request_waits_for_staff_and_a_second_one_is_the_first(client, staff, product):
    docked = docked_site(staff=staff)
    _order(client, docked, product)

    first = signed_call(client, docked, "POST", "/api/v1/orders/C-1/refund-requests", {"reason": "买家不要了"})
    second = signed_call(client, docked, "POST", "/api/v1/orders/C-1/refund-requests", {"reason": "买家不要了"})

    assert first.status_code == 201 and first.json()["status"] == "pending"
    assert second.json()["id"] == first.json()["id"]
    assert ApiRefundRequest.objects.count() == 1
    assert prepaid_balance(docked.site.distributor_id) == Decimal("920.00")  # nothing moves before review


def test_a_busy_key_stamps_its_last_use_once_a_minute_and_audits_every_order(client, staff, product):
    from distribution.docking.models import ApiKey

    docked = docked_site(staff=staff)
    _order(client, docked, product, "C-1")
    first_stamp = ApiKey.objects.get(pk=docked.key.pk).last_used_at
    _order(client, docked, product, "C-2")

    assert first_stamp is not None
    assert ApiKey.objects.get(pk=docked.key.pk).last_used_at == first_stamp
    placed = AuditLogEntry.objects.filter(action="api.order_placed", actor_name=f"api:{docked.key.key_id}")
    assert placed.count() == 2
    assert not AuditLogEntry.objects.filter(action="api.order_read").exists()  # the answer is no second read
