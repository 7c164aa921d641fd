"""The console's stock overview: counts per state, thresholds, alerts, and who may see it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import CardKey, CardKeyBatch, CardKeyStatus, Category, Product, ProductType, StockAlert
from catalog.selectors import stock_overview
from catalog.services import (
    check_stock_levels,
    claim_reusable_key,
    confirm_card_key_import,
    run_card_key_import,
    set_reusable_key_cap,
    set_reusable_key_secret,
    start_card_key_import,
    validate_card_key_import,
)
from kamen import crypto
from kamen.models import AuditLogEntry

URL = "/console/stock/"


def make_product(name=None, threshold=2, product_type=ProductType.CARD_KEY) -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(
        category=category,
        name=name or f"Steam {Product.objects.count()}",
        product_type=product_type,
        retail_price=Decimal("48.00"),
        is_on_shelf=True,
        low_stock_threshold=threshold,
    )


def add_keys(product, count, *, status=CardKeyStatus.AVAILABLE, expires_at=None):
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    now = timezone.now()
    keys = []
    for _number in range(count):
        secret = f"{product.pk}-{status}-{CardKey.objects.count() + len(keys)}"
        key_id, blob = crypto.encrypt(secret)
        keys.append(
            CardKey(
                product=product,
                batch=batch,
                secret_ciphertext=blob,
                key_id=key_id,
                fingerprint=crypto.blind_index(secret),
                status=status,
                expires_at=expires_at,
                reserved_at=now if status == CardKeyStatus.RESERVED else None,
                reserved_for="KM-TEST-ORDER" if status == CardKeyStatus.RESERVED else "",
                reserved_until=now + timedelta(minutes=15) if status == CardKeyStatus.RESERVED else None,
                sold_at=now if status == CardKeyStatus.SOLD else None,
                voided_at=now if status == CardKeyStatus.VOID else None,
            )
        )
    return CardKey.objects.bulk_create(keys)


def stocked_product(name="Steam 50", threshold=2) -> Product:
    product = make_product(name, threshold=threshold)
    add_keys(product, 3)
    add_keys(product, 1, expires_at=timezone.now() - timedelta(days=1))
    add_keys(product, 2, status=CardKeyStatus.RESERVED)
    add_keys(product, 4, status=CardKeyStatus.SOLD)
    add_keys(product, 1, status=CardKeyStatus.VOID)
    return product


def row_of(response, product):
    return next(row for row in response.context["rows"] if row.pk == product.pk)


# --- counts -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_each_state_is_counted_and_expired_keys_are_apart(client, staff_user):
    product = stocked_product()
    client.force_login(staff_user)

    response = client.get(URL)

    row = row_of(response, product)
    assert response.status_code == 200
    assert (row.available_count, row.reserved_count, row.sold_count, row.void_count, row.expired_count) == (3, 2, 4, 1, 1)
    assert response.context["totals"]["available_count"] == 3


@pytest.mark.django_db
def test_a_reusable_key_shows_as_sold_over_cap(client, staff_user):
    product = make_product("下载教程")
    reusable = set_reusable_key_secret(product=product, secret="https://pan.example.com/s/1", actor=None)
    set_reusable_key_cap(reusable_key=reusable, sales_cap=20, actor=None)
    claim_reusable_key(product=product, quantity=7, reference="ORDER-1")
    client.force_login(staff_user)

    response = client.get(URL)

    page = response.content.decode()
    assert row_of(response, product).reusable.pk == reusable.pk
    assert "已售 7 / 20" in page
    assert "https://pan.example.com/s/1" not in page


@pytest.mark.django_db
def test_the_overview_is_one_query_whatever_the_number_of_products(django_assert_num_queries):
    for number in range(5):
        stocked_product(f"商品 {number}")
    reusable = set_reusable_key_secret(product=make_product("教程"), secret="LINK", actor=None)
    StockAlert.objects.create(product=reusable.product, threshold=2, available_count=0)

    with django_assert_num_queries(1):
        rows = stock_overview()
        summary = [(row.available_count, row.reusable is not None, row.open_alert_at is not None) for row in rows]

    assert len(summary) == 6


@pytest.mark.django_db
def test_the_page_does_not_run_a_query_per_product(client, staff_user):
    stocked_product("第一个")
    client.force_login(staff_user)
    client.get(URL)
    with CaptureQueriesContext(connection) as one_product:
        client.get(URL)
    for number in range(6):
        stocked_product(f"商品 {number}")

    with CaptureQueriesContext(connection) as seven_products:
        response = client.get(URL)

    assert len(response.context["rows"]) == 7
    assert len(seven_products.captured_queries) == len(one_product.captured_queries)


@pytest.mark.django_db
def test_only_card_key_products_are_listed(client, staff_user):
    card = make_product("点卡")
    manual = make_product("人工发货", product_type=ProductType.MANUAL)
    client.force_login(staff_user)

    response = client.get(URL)

    listed = {row.pk for row in response.context["rows"]}
    assert card.pk in listed
    assert manual.pk not in listed


# --- alerts and links -------------------------------------------------------------------------
@pytest.mark.django_db
def test_open_alerts_are_highlighted_and_the_import_page_is_linked(client, staff_user):
    low = make_product("快没了", threshold=5)
    add_keys(low, 1)
    plenty = make_product("很多", threshold=1)
    add_keys(plenty, 4)
    check_stock_levels()
    client.force_login(staff_user)

    page = client.get(URL).content.decode()

    assert f'id="stock-row-{low.pk}" data-product="{low.pk}" class="stock-alerted"' in page
    assert f'id="stock-row-{plenty.pk}" data-product="{plenty.pk}" class=""' in page
    assert 'href="/console/imports/new/"' in page


@pytest.mark.django_db
def test_the_console_front_page_links_to_the_stock_page(client, staff_user):
    client.force_login(staff_user)

    page = client.get("/admin/").content.decode()

    assert 'href="/console/stock/"' in page


# --- who may see it ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_the_login(client):
    stocked_product()

    response = client.get(URL)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_a_user_who_is_not_staff_cannot_see_it(client, django_user_model):
    stocked_product()
    buyer = django_user_model.objects.create_user(username="buyer", password="x", is_staff=False)
    buyer.groups.add(Group.objects.get(name="operator"))
    client.force_login(buyer)

    response = client.get(URL)

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_staff_without_the_stock_permission_are_refused(client, django_user_model):
    stocked_product()
    clerk = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    client.force_login(clerk)

    response = client.get(URL)

    assert response.status_code == 403


@pytest.mark.django_db
def test_read_only_staff_see_the_threshold_but_no_form(client, django_user_model):
    product = stocked_product()
    finance = django_user_model.objects.create_user(username="finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    client.force_login(finance)

    page = client.get(URL).content.decode()

    assert f'id="stock-row-{product.pk}"' in page
    assert f"/console/stock/{product.pk}/threshold/" not in page


# --- the threshold ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_staff_change_the_threshold_and_it_is_audited_and_checked_at_once(client, staff_user):
    product = stocked_product(threshold=2)
    client.force_login(staff_user)

    response = client.post(f"/console/stock/{product.pk}/threshold/", {"low_stock_threshold": "8"}, follow=True)

    product.refresh_from_db()
    assert product.low_stock_threshold == 8
    entry = AuditLogEntry.objects.get(action="catalog.product.stock_settings_change")
    assert entry.changes["low_stock_threshold"] == [2, 8]
    assert "预警值已设为 8" in response.content.decode()
    assert StockAlert.objects.get(product=product, resolved_at__isnull=True).available_count == 3


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["abc", "-1", "", "1.5", "99999999999"])
def test_a_bad_threshold_is_refused_with_a_message_and_changes_nothing(client, staff_user, value):
    product = stocked_product(threshold=2)
    client.force_login(staff_user)

    response = client.post(f"/console/stock/{product.pk}/threshold/", {"low_stock_threshold": value}, follow=True)

    product.refresh_from_db()
    messages = [str(message) for message in response.context["messages"]]
    assert product.low_stock_threshold == 2
    assert len(messages) == 1
    assert product.name in messages[0]
    assert not AuditLogEntry.objects.filter(action="catalog.product.stock_settings_change").exists()


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_change_the_threshold(client, django_user_model):
    product = stocked_product(threshold=2)
    finance = django_user_model.objects.create_user(username="finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    client.force_login(finance)

    response = client.post(f"/console/stock/{product.pk}/threshold/", {"low_stock_threshold": "9"})

    product.refresh_from_db()
    assert response.status_code == 403
    assert product.low_stock_threshold == 2


@pytest.mark.django_db
def test_the_threshold_form_only_accepts_posts(client, staff_user):
    product = stocked_product()
    client.force_login(staff_user)

    response = client.get(f"/console/stock/{product.pk}/threshold/?low_stock_threshold=9")

    assert response.status_code == 405


# --- imports resolve alerts -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_finished_import_resolves_the_low_stock_alert_at_once(staff_user, django_capture_on_commit_callbacks):
    product = make_product("补货", threshold=2)
    check_stock_levels()
    alert = StockAlert.objects.get(product=product)
    with django_capture_on_commit_callbacks(execute=False):
        import_job = start_card_key_import(product=product, actor=staff_user, text="A1\nA2\nA3\nA4\nA5")
    validate_card_key_import(import_id=import_job.pk)
    import_job.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        confirm_card_key_import(import_job=import_job, actor=staff_user)

    run_card_key_import(import_id=import_job.pk)

    alert.refresh_from_db()
    assert alert.resolved_at is not None


@pytest.mark.django_db
def test_the_demo_shows_a_reusable_key_and_voided_keys_and_loads_twice(settings, tmp_path, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    from catalog.models import ReusableCardKey

    settings.MEDIA_ROOT = tmp_path

    with django_capture_on_commit_callbacks(execute=False):
        call_command("load_demo_data", stdout=open("/dev/null", "w"))  # noqa: SIM115
        call_command("load_demo_data", stdout=open("/dev/null", "w"))  # noqa: SIM115

    reusable = ReusableCardKey.objects.get()
    assert (reusable.sold_count, reusable.sales_cap) == (12, 500)
    assert CardKey.objects.filter(status=CardKeyStatus.VOID).count() == 2
    assert CardKey.objects.count() == 20


@pytest.mark.django_db
def test_a_deactivated_reusable_key_is_shown_as_such(client, staff_user):
    from catalog.services import deactivate_reusable_key

    product = make_product("旧教程")
    reusable = set_reusable_key_secret(product=product, secret="LINK", actor=None)
    deactivate_reusable_key(reusable_key=reusable, actor=None)
    client.force_login(staff_user)

    response = client.get(URL)

    assert row_of(response, product).reusable is None
    assert "循环卡密已停用" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_operator_edits_a_threshold_on_a_phone(logged_in_page, live_server):
    product = stocked_product("Steam 50 元充值卡", threshold=2)
    page = logged_in_page
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"{live_server.url}/console/stock/")
    page.fill(f"#threshold-{product.pk}", "6")
    page.click(f"#stock-row-{product.pk} .threshold-form input[type=submit]")
    page.wait_for_selector(f"#stock-row-{product.pk}.stock-alerted")

    product.refresh_from_db()
    assert product.low_stock_threshold == 6
    assert page.locator(f"#stock-row-{product.pk} .alert-badge").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
