"""Money and idempotency under concurrency (issue 17 §1, §3), real threads on PostgreSQL:
concurrent API orders never take the prepaid balance below minus the credit limit, and one
client_order_no sent by many requests at once is one order and one debit."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from commissions.models import AccountKind, JournalEntry
from commissions.services.prepaid import prepaid_balance
from distribution.docking.errors import DockingError
from distribution.docking.models import DockingSite
from distribution.docking.services import Caller
from orders.api.models import DockingOrder
from orders.api.services import place_api_order
from orders.models import Order

from .docking_support import docked_site, owner
from .factories import add_keys, make_product

pytestmark = pytest.mark.django_db(transaction=True)


def _caller(docked) -> Caller:
    site = DockingSite.objects.get(pk=docked.site.pk)
    return Caller(
        key_pk=docked.key.pk,
        key_id=docked.key.key_id,
        site_id=site.pk,
        distributor_id=site.distributor_id,
        scopes=tuple(docked.key.scopes),
        site_name=site.name,
        credit_limit=site.credit_limit,
        client_ip="127.0.0.1",
        order_limit=site.order_limit,
        contact_email=site.contact_email,
    )


def _race(count, work):
    outcomes, barrier = [], threading.Barrier(count)

    def run(index):
        barrier.wait()
        try:
            outcomes.append(work(index))
        except DockingError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_concurrent_orders_never_overdraw_the_prepaid_balance_and_credit(django_user_model):
    docked = docked_site(staff=owner(django_user_model), prepaid="300.00", credit_limit="100.00")  # room for 5 × 80
    product = make_product(price="100.00")
    add_keys(product, 10)
    caller = _caller(docked)

    outcomes = _race(
        8, lambda index: place_api_order(caller=caller, product_id=product.pk, quantity=1, client_order_no=f"R-{index}")
    )

    placed = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert len(placed) == 5 and outcomes.count("insufficient_balance") == 3
    assert prepaid_balance(docked.site.distributor_id) == Decimal("-100.00")
    entries = JournalEntry.objects.filter(
        account__kind=AccountKind.DOCKING_PREPAID, account__distributor_id=docked.site.distributor_id
    )
    assert sum(e.amount if e.side == "credit" else -e.amount for e in entries) == Decimal("-100.00")
    assert Order.objects.count() == 5


def test_one_client_order_no_sent_at_once_by_many_requests_is_one_order(django_user_model):
    docked = docked_site(staff=owner(django_user_model), prepaid="1000.00")
    product = make_product(price="100.00")
    add_keys(product, 10)
    caller = _caller(docked)

    outcomes = _race(
        6, lambda index: place_api_order(caller=caller, product_id=product.pk, quantity=1, client_order_no="SAME")
    )

    assert len({placed.docking_order.order_id for placed in outcomes}) == 1
    assert sum(placed.created for placed in outcomes) == 1
    assert DockingOrder.objects.count() == 1 and Order.objects.count() == 1
    assert prepaid_balance(docked.site.distributor_id) == Decimal("920.00")
