"""send_top_up over real HTTP against the sandbox served by a live server: the default
transport, real timeouts, and a slow supplier that must not cause a second top-up."""

import time
from decimal import Decimal

import pytest

from catalog.models import SandboxOrder, Supplier, SupplierRechargeAttempt
from catalog.services import TopUpStatus, send_top_up

from .suppliers_support import add_channel, make_product, make_sku, make_supplier

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wired(live_server):
    product = make_product(retail="100.00")
    make_sku("CM100-A", price="96.00")
    make_sku("CM100-B", price="97.00")
    base_url = f"{live_server.url}/sandbox/supplier/"
    first, first_account = make_supplier("甲", base_url=base_url)
    second, _ = make_supplier("乙", base_url=base_url)
    channel_a = add_channel(product, first, "CM100-A", priority=1, cost="96.00")
    channel_b = add_channel(product, second, "CM100-B", priority=2, cost="97.00")
    Supplier.objects.filter(pk=first.pk).update(balance=Decimal("1000.00"))
    return product, channel_a, channel_b, first_account


def test_a_top_up_over_real_http(wired):
    product, channel_a, _, _ = wired

    outcome = send_top_up(product=product, reference="HTTP-1", target="13800138000", quantity=1)

    assert outcome.status == TopUpStatus.SUCCEEDED and outcome.channel == channel_a
    assert outcome.supplier_order_no == SandboxOrder.objects.get().order_no
    assert Supplier.objects.get(pk=channel_a.supplier_id).balance == Decimal("904.00")


def test_a_slow_supplier_is_waited_for_never_doubled(wired, settings):
    settings.SUPPLIER_HTTP_TIMEOUT = 0.5
    product, channel_a, channel_b, slow_account = wired
    slow_account.latency_ms = 3000
    slow_account.save()
    started = time.monotonic()

    timed_out = send_top_up(product=product, reference="SLOW-1", target="13800138000", quantity=1)
    slow_account.latency_ms = 0
    slow_account.save()
    too_soon = send_top_up(product=product, reference="SLOW-1", target="13800138000", quantity=1)
    time.sleep(max(0.0, started + 3.8 - time.monotonic()))  # the slow order has landed by now
    settled = send_top_up(product=product, reference="SLOW-1", target="13800138000", quantity=1)

    assert timed_out.status == TopUpStatus.PENDING and too_soon.status == TopUpStatus.PENDING
    assert settled.status == TopUpStatus.SUCCEEDED and settled.channel == channel_a
    assert SandboxOrder.objects.count() == 1
    assert not SupplierRechargeAttempt.objects.filter(channel=channel_b).exists()
