"""Issue 17 §4, the webhook part of the two-instance test: an upstream Kamen served live over
HTTP, its webhook outbox delivering to our receiver over HTTP. The upstream's price changes →
our docked product's price follows by webhook; a receiver that fails five times gets the event
on the sixth try, and applies it once. The hourly reconcile catches what a lost webhook missed,
and warns of a low prepaid balance at the upstream."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from catalog.models import (
    Category,
    Product,
    SupplierAdapter,
    SupplierAlert,
    SupplierChannel,
    UpstreamWebhookReceipt,
)
from catalog.selectors import product_stock_state
from catalog.services.suppliers import create_supplier
from catalog.services.upstream import import_upstream_products, parse_markup
from catalog.services.upstream_sync import reconcile_upstream, set_upstream_webhook_secret
from catalog.tasks import reconcile_upstreams_task
from distribution.docking import receiver
from distribution.docking.models import WebhookAttempt, WebhookEvent, WebhookStatus
from distribution.docking.product_events import emit_product_events
from distribution.docking.services import set_webhook
from distribution.docking.webhooks import deliver_due_webhooks

from .docking_support import docked_site, owner
from .factories import add_keys, make_product


@pytest.fixture
def two_ends(live_server, django_user_model):
    """Upstream: a card-key product at 100.00, our grade paying 80 %. Downstream: that product
    docked at +10 % rounded up to the yuan, the upstream's webhooks pointed at our receiver."""
    staff = owner(django_user_model)
    staff.email = "owner@example.com"
    staff.save()
    docked = docked_site(staff=staff, prepaid="500.00", discount_bp=8000)
    upstream_product = make_product(price="100.00", name="上游点卡")
    add_keys(upstream_product, 3)
    supplier = create_supplier(
        actor=None,
        app_secret=docked.secret,
        name="上游 Kamen",
        adapter=SupplierAdapter.KAMEN_API,
        base_url=live_server.url + "/",
        app_id=docked.key.key_id,
    )
    callback = live_server.url + reverse("distribution:upstream-webhook", kwargs={"supplier_pk": supplier.pk})
    set_upstream_webhook_secret(supplier=supplier, secret=set_webhook(site=docked.site, url=callback, actor=staff))
    (ours,) = import_upstream_products(
        supplier=supplier,
        skus=[str(upstream_product.pk)],
        markup=parse_markup(kind="percent", value="10", rounding="yuan"),
        category=Category.objects.get(slug="cards"),
        actor=staff,
    )
    Product.objects.filter(pk=ours.pk).update(is_on_shelf=True)
    emit_product_events()  # the site's first look is recorded silently
    return supplier, upstream_product, ours


def _ours(product):
    product.refresh_from_db()
    return product.cost_price, product.retail_price, product.is_on_shelf


@pytest.mark.django_db(transaction=True)
def test_the_upstreams_price_change_reaches_our_price_by_webhook(two_ends):
    supplier, upstream_product, ours = two_ends
    before = _ours(ours)

    Product.objects.filter(pk=upstream_product.pk).update(retail_price=Decimal("120.00"))  # upstream staff
    add_keys(upstream_product, 2)
    written = emit_product_events()
    delivered = deliver_due_webhooks()

    assert before == (Decimal("80.00"), Decimal("88.00"), True)
    assert (written, delivered) == (2, 2)
    # our cost is 80 % of 120.00; our price 96.00 + 10 % = 105.60, up to the yuan
    assert _ours(ours) == (Decimal("96.00"), Decimal("106.00"), True)
    ours.refresh_from_db()
    assert product_stock_state(ours).available == 5  # the upstream's keys, shown as ours
    assert set(WebhookEvent.objects.values_list("status", "last_status_code")) == {(WebhookStatus.DELIVERED, 200)}


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_fails_five_times_gets_the_event_on_the_sixth_try(two_ends, monkeypatch):
    supplier, upstream_product, ours = two_ends
    applied = receiver.receive_upstream_event
    calls = []

    def failing_five_times(**kwargs):
        calls.append(kwargs["body"]["id"])
        if len(calls) <= 5:
            raise RuntimeError("the receiver's database is down")
        return applied(**kwargs)

    monkeypatch.setattr(receiver, "receive_upstream_event", failing_five_times)
    Product.objects.filter(pk=upstream_product.pk).update(retail_price=Decimal("110.00"))
    emit_product_events()
    now = timezone.now()
    prices = []
    for _ in range(6):
        deliver_due_webhooks(now=now)
        prices.append(_ours(ours)[1])
        now += timedelta(hours=3)  # past any backoff of the upstream's schedule

    event = WebhookEvent.objects.get()
    log = list(WebhookAttempt.objects.filter(event=event).order_by("id").values_list("status_code", flat=True))
    assert log == [500, 500, 500, 500, 500, 200]
    assert event.status == WebhookStatus.DELIVERED
    assert prices == [Decimal("88.00")] * 5 + [Decimal("97.00")]  # 88.00 + 10 % = 96.80 → 97
    assert len(set(calls)) == 1 and UpstreamWebhookReceipt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_hourly_reconcile_catches_a_lost_webhook_and_a_delisting(two_ends):
    supplier, upstream_product, ours = two_ends
    other = make_product(price="50.00", name="另一张卡")
    add_keys(other, 1)
    (second,) = import_upstream_products(
        supplier=supplier,
        skus=[str(other.pk)],
        markup=parse_markup(kind="fixed", value="2", rounding="jiao"),
        category=Category.objects.get(slug="cards"),
        actor=None,
    )
    Product.objects.filter(pk=second.pk).update(is_on_shelf=True)
    # no site has a callback for these changes: only the reconcile can see them
    Product.objects.filter(pk=upstream_product.pk).update(retail_price=Decimal("90.00"))
    Product.objects.filter(pk=other.pk).update(is_on_shelf=False, off_shelf_reason="停售")

    report = reconcile_upstream(supplier=supplier)

    assert report.error == "" and report.balance == Decimal("500.00")
    assert _ours(ours) == (Decimal("72.00"), Decimal("80.00"), True)  # 72.00 + 10 % = 79.20 → 80
    second.refresh_from_db()
    assert second.is_on_shelf is False and report.delisted == 1
    assert SupplierChannel.objects.get(product=second).is_in_stock is False


@pytest.mark.django_db(transaction=True)
def test_a_low_prepaid_balance_at_the_upstream_alerts_the_merchant_once(two_ends):
    supplier, _upstream_product, _ours_product = two_ends
    supplier.low_balance_threshold = Decimal("600.00")
    supplier.save(update_fields=["low_balance_threshold"])

    reconcile_upstreams_task()
    reconcile_upstreams_task()
    supplier.refresh_from_db()
    alerts = list(SupplierAlert.objects.filter(kind="low_balance", supplier=supplier, resolved_at__isnull=True))
    supplier.low_balance_threshold = Decimal("100.00")
    supplier.save(update_fields=["low_balance_threshold"])
    reconcile_upstreams_task()

    assert supplier.balance == Decimal("500.00")
    assert len(alerts) == 1 and "500.00" in alerts[0].message
    assert len([m for m in mail.outbox if "余额" in m.subject]) == 1  # e-mailed once, not every hour
    assert not SupplierAlert.objects.filter(kind="low_balance", resolved_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_upstream_opens_a_sync_alert_and_changes_no_product(two_ends):
    supplier, _upstream_product, ours = two_ends
    supplier.base_url = "http://127.0.0.1:9/"
    supplier.save(update_fields=["base_url"])
    before = _ours(ours)

    report = reconcile_upstream(supplier=supplier)

    assert report.error
    assert _ours(ours) == before
    assert SupplierAlert.objects.filter(kind="sync_failed", supplier=supplier, resolved_at__isnull=True).exists()
