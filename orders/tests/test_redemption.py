"""Redemption (核销): one code per unit, redeemed once, logged, with an optional dynamic code."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from catalog.models import BundleItem, ProductType
from catalog.models.products import RedemptionMode
from orders.models import OrderStatus, RedemptionOutcome, Voucher, VoucherRedemption
from orders.services.access import SESSION_KEY, signed_order_token
from orders.services.redemption import (
    VoucherRefused,
    _secret,
    current_dynamic_code,
    dynamic_code_at,
    issue_vouchers,
    redeem_voucher,
    voucher_code,
)

from .postsale_helpers import make_order, make_product


@pytest.fixture
def clerk(db, django_user_model):
    user = django_user_model.objects.create_user(username="clerk", password="kamen-test-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return user


def voucher_order(mode=RedemptionMode.CODE, quantity=1, **kwargs):
    product = make_product(name="门店咖啡券", redemption_mode=mode, product_type=ProductType.MANUAL)
    order = make_order(product=product, quantity=quantity, **kwargs)
    return order, issue_vouchers(order=order)


@pytest.mark.django_db
def test_issuing_gives_one_voucher_per_unit_and_twice_issues_once():
    order, vouchers = voucher_order(quantity=3)

    again = issue_vouchers(order=order)

    assert [voucher.sequence for voucher in vouchers] == [1, 2, 3]
    assert [voucher.pk for voucher in again] == [voucher.pk for voucher in vouchers]
    assert Voucher.objects.filter(order=order).count() == 3
    codes = {voucher_code(voucher) for voucher in vouchers}
    assert len(codes) == 3
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)


@pytest.mark.django_db
def test_codes_are_stored_encrypted_not_in_plaintext():
    _order, [voucher] = voucher_order()
    code = voucher_code(voucher).replace("-", "")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM orders_voucher WHERE id = %s", [voucher.pk])
        row = cursor.fetchone()

    assert all(code not in str(bytes(value) if isinstance(value, memoryview) else value) for value in row)


@pytest.mark.django_db
def test_products_without_redemption_get_no_vouchers_and_bundles_get_their_redeemable_parts():
    plain = make_order(product=make_product(name="Steam"))
    assert issue_vouchers(order=plain) == []

    coffee = make_product(name="咖啡券", redemption_mode=RedemptionMode.CODE, product_type=ProductType.MANUAL)
    bundle = make_product(name="早餐套餐", product_type=ProductType.BUNDLE)
    BundleItem.objects.create(bundle=bundle, component=coffee, quantity=2)
    BundleItem.objects.create(bundle=bundle, component=make_product(name="Steam 10"), quantity=1)
    vouchers = issue_vouchers(order=make_order(product=bundle, quantity=2))

    assert [(voucher.product_id, voucher.sequence) for voucher in vouchers] == [(coffee.pk, n) for n in (1, 2, 3, 4)]


@pytest.mark.django_db
def test_an_unpaid_order_gets_no_vouchers():
    product = make_product(name="咖啡券", redemption_mode=RedemptionMode.CODE)
    order = make_order(product=product, status=OrderStatus.PENDING_PAYMENT)

    with pytest.raises(ValidationError):
        issue_vouchers(order=order)
    assert not Voucher.objects.exists()


@pytest.mark.django_db
def test_a_voucher_redeems_once_and_the_second_time_says_when_and_by_whom(clerk, django_user_model):
    _order, [voucher] = voucher_order()
    code = voucher_code(voucher)

    redeemed = redeem_voucher(code=code.lower(), actor=clerk, store_label="南京西路店", ip="10.0.0.8")
    other = django_user_model.objects.create_user(username="clerk2", is_staff=True)
    other.groups.add(Group.objects.get(name="operator"))
    with pytest.raises(VoucherRefused) as refusal:
        redeem_voucher(code=code, actor=other, store_label="徐家汇店", ip="10.0.0.9")

    assert redeemed.redeemed_by == clerk and redeemed.redeemed_store == "南京西路店"
    message = str(refusal.value)
    assert "clerk" in message and "南京西路店" in message and "不能重复核销" in message
    assert timezone.localtime(redeemed.redeemed_at).strftime("%Y-%m-%d %H:%M") in message
    log = list(VoucherRedemption.objects.order_by("id").values_list("outcome", "actor_name", "store_label", "ip_address"))
    assert log == [
        (RedemptionOutcome.REDEEMED, "clerk", "南京西路店", "10.0.0.8"),
        (RedemptionOutcome.ALREADY_REDEEMED, "clerk2", "徐家汇店", "10.0.0.9"),
    ]


@pytest.mark.django_db
def test_unknown_and_empty_codes_are_refused_and_change_nothing(clerk):
    voucher_order()

    with pytest.raises(VoucherRefused, match="券码无效"):
        redeem_voucher(code="ABCD-EFGH-JKLM-NPQR", actor=clerk, ip="10.0.0.8")
    with pytest.raises(ValidationError):
        redeem_voucher(code=" - ", actor=clerk)

    assert not Voucher.objects.filter(redeemed_at__isnull=False).exists()
    assert VoucherRedemption.objects.get().outcome == RedemptionOutcome.UNKNOWN_CODE


@pytest.mark.django_db
def test_redeeming_needs_the_permission(db, django_user_model):
    _order, [voucher] = voucher_order()
    finance = django_user_model.objects.create_user(username="fin", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))

    with pytest.raises(PermissionDenied):
        redeem_voucher(code=voucher_code(voucher), actor=finance)

    voucher.refresh_from_db()
    assert voucher.redeemed_at is None


@pytest.mark.django_db
def test_a_refunded_orders_voucher_is_refused(clerk):
    order, [voucher] = voucher_order()
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED, refunded_amount=order.paid_amount)

    with pytest.raises(VoucherRefused, match="已退款"):
        redeem_voucher(code=voucher_code(voucher), actor=clerk)


@pytest.mark.django_db
def test_dynamic_code_is_accepted_for_the_current_and_adjacent_step_only(clerk):
    _order, vouchers = voucher_order(mode=RedemptionMode.CODE_AND_DYNAMIC, quantity=3)
    now = timezone.now()
    secret = _secret(vouchers[0])
    step = int(now.timestamp()) // 30

    with pytest.raises(VoucherRefused, match="动态码"):
        redeem_voucher(code=voucher_code(vouchers[0]), dynamic_code="", actor=clerk, now=now)
    with pytest.raises(VoucherRefused, match="动态码错误或已过期"):
        redeem_voucher(code=voucher_code(vouchers[0]), dynamic_code=dynamic_code_at(secret, step - 2), actor=clerk, now=now)
    wrong = f"{(int(dynamic_code_at(secret, step)) + 1) % 1_000_000:06d}"
    with pytest.raises(VoucherRefused, match="动态码错误或已过期"):
        redeem_voucher(code=voucher_code(vouchers[0]), dynamic_code=wrong, actor=clerk, now=now)
    redeem_voucher(code=voucher_code(vouchers[0]), dynamic_code=dynamic_code_at(secret, step - 1), actor=clerk, now=now)
    shown, _seconds = current_dynamic_code(voucher=vouchers[1], now=now)
    redeem_voucher(code=voucher_code(vouchers[1]), dynamic_code=shown, actor=clerk, now=now + timedelta(seconds=30))

    assert Voucher.objects.filter(redeemed_at__isnull=False).count() == 2
    assert VoucherRedemption.objects.filter(outcome=RedemptionOutcome.BAD_DYNAMIC_CODE).count() == 3


def test_dynamic_codes_follow_rfc_6238():
    # RFC 6238 appendix B, SHA-1, T = 59 s → 94287082 (8 digits); the 6-digit code is its tail.
    assert dynamic_code_at(b"12345678901234567890", 59 // 30) == "287082"
    assert dynamic_code_at(b"12345678901234567890", 1111111109 // 30) == "081804"


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_redeemers_exactly_one_succeeds(django_user_model):
    operator = Group.objects.get_or_create(name="operator")[0]
    operator.permissions.add(Permission.objects.get(codename="redeem_voucher"))
    clerks = []
    for index in range(10):
        user = django_user_model.objects.create_user(username=f"clerk{index}", is_staff=True)
        user.groups.add(operator)
        clerks.append(user)
    _order, [voucher] = voucher_order()
    code = voucher_code(voucher)
    barrier = threading.Barrier(10)
    results = []

    def counter(user):
        barrier.wait()
        try:
            redeem_voucher(code=code, actor=user, store_label=user.username)
            results.append("ok")
        except VoucherRefused as refusal:
            results.append(refusal.outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=counter, args=(user,)) for user in clerks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["already_redeemed"] * 9 + ["ok"]
    assert VoucherRedemption.objects.filter(outcome=RedemptionOutcome.REDEEMED).count() == 1
    voucher.refresh_from_db()
    assert voucher.redeemed_by.username == VoucherRedemption.objects.get(outcome="redeemed").actor_name


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_counter_page_redeems_a_typed_code_and_refuses_a_second(client, clerk):
    _order, [voucher] = voucher_order()
    client.force_login(clerk)
    url = reverse("postsale:voucher-redeem")

    assert client.get(url + f"?code={voucher_code(voucher)}").status_code == 200
    first = client.post(url, {"code": voucher_code(voucher), "store_label": "总店"}, REMOTE_ADDR="10.1.1.1")
    second = client.post(url, {"code": voucher_code(voucher), "store_label": "总店"})

    assert first.status_code == 200 and "核销成功" in first.content.decode()
    assert second.status_code == 409
    assert "clerk" in second.content.decode() and "不能重复核销" in second.content.decode()
    assert VoucherRedemption.objects.get(outcome="redeemed").ip_address == "10.1.1.1"
    assert client.get(url).context["values"]["store_label"] == "总店"


@pytest.mark.django_db
def test_the_counter_page_needs_the_permission(client, django_user_model):
    risk = django_user_model.objects.create_user(username="risk", is_staff=True)
    risk.groups.add(Group.objects.get(name="risk"))
    client.force_login(risk)

    assert client.get(reverse("postsale:voucher-redeem")).status_code == 403
    client.logout()
    assert client.get(reverse("postsale:voucher-redeem")).status_code == 302


@pytest.mark.django_db
def test_the_buyer_sees_code_qr_and_dynamic_code_only_with_access(client):
    order, [voucher] = voucher_order(mode=RedemptionMode.CODE_AND_DYNAMIC)
    vouchers_url = reverse("postsale:order-vouchers", args=[order.order_no])
    qr_url = reverse("postsale:voucher-qr", args=[voucher.pk])
    dynamic_url = reverse("postsale:voucher-dynamic-code", args=[voucher.pk])

    assert client.get(vouchers_url).status_code == 404
    assert client.get(qr_url).status_code == 404
    assert client.get(dynamic_url).status_code == 404

    page = client.get(vouchers_url + f"?t={signed_order_token(order)}")
    qr = client.get(qr_url)
    dynamic = client.get(dynamic_url).json()

    assert page.status_code == 200 and voucher_code(voucher) in page.content.decode()
    assert order.order_no in client.session[SESSION_KEY]
    assert qr["Content-Type"] == "image/png" and qr.content.startswith(b"\x89PNG")
    assert len(dynamic["code"]) == 6 and 1 <= dynamic["seconds_left"] <= 30


@pytest.mark.django_db
def test_the_qr_code_carries_the_voucher_code(client):
    order, [voucher] = voucher_order()
    session = client.session
    session[SESSION_KEY] = [order.order_no]
    session.save()

    png = client.get(reverse("postsale:voucher-qr", args=[voucher.pk])).content

    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(png))
    assert image.format == "PNG" and image.size[0] >= 100


@pytest.mark.django_db(transaction=True)
def test_buyer_shows_code_and_dynamic_code_and_the_store_redeems_it_in_a_real_browser(browser, live_server, django_user_model):
    # Given a buyer who bought two coffee vouchers that need the dynamic code
    order, vouchers = voucher_order(mode=RedemptionMode.CODE_AND_DYNAMIC, quantity=2, password="open-sesame")
    store = django_user_model.objects.create_user(username="store-1", password="kamen-test-pass", is_staff=True)
    store.groups.add(Group.objects.get(name="operator"))
    buyer = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    counter = browser.new_context(locale="zh-CN")
    try:
        # When the buyer looks the order up on the phone and opens the vouchers
        phone = buyer.new_page()
        phone.goto(f"{live_server.url}/query/")
        phone.fill("#id_identifier", order.order_no)
        phone.fill("#id_password", "open-sesame")
        phone.click("button[type=submit]")
        phone.click("text=查看核销券")
        first = phone.locator(".voucher").first
        code = first.locator(".voucher-code").inner_text()
        dynamic = first.locator(".dynamic-code").inner_text()
        phone.wait_for_function(
            "() => [...document.querySelectorAll('.voucher img')].every(image => image.complete && image.naturalWidth > 0)"
        )

        # And the store types both codes at the counter
        desk = counter.new_page()
        desk.goto(f"{live_server.url}/admin/login/?next=/console/redeem/")
        desk.fill("#id_username", "store-1")
        desk.fill("#id_password", "kamen-test-pass")
        desk.click("input[type=submit]")
        desk.fill("#id_code", code)
        desk.fill("#id_dynamic_code", dynamic)
        desk.fill("#id_store_label", "南京西路店")
        desk.click("input[type=submit][value='核销']")

        # Then it is redeemed once, and a second try says when and by whom
        assert "核销成功" in desk.locator("#redeem-success").inner_text()
        desk.fill("#id_code", code)
        desk.click("input[type=submit][value='核销']")
        assert "store-1" in desk.locator("#redeem-refusal").inner_text()
        phone.reload()
        assert "已于" in phone.locator(".voucher").first.inner_text()
    finally:
        buyer.close()
        counter.close()
    assert Voucher.objects.get(pk=vouchers[0].pk).redeemed_store == "南京西路店"
