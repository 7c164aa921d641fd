"""Stock purchase (进货): card keys at the grade price and volume tier, paid from the wallet,
revealed to the buyer only, each key once; bad input changes nothing; a wallet payment, a stock
purchase and a withdrawal of one balance at the same moment never overdraw it."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from catalog.models import CardKey, CardKeyStatus
from catalog.services import InsufficientStock, claim_card_keys
from commissions import selectors as commission_selectors
from commissions.models import JournalTransaction
from commissions.services import add_payout_account, request_withdrawal
from commissions.tests.factories import make_chain
from commissions.tests.test_withdrawals import _fund
from distribution.models import GradeVolumeTier
from distribution.tests.factories import GradeFactory
from orders.models import Order, StockPurchase
from orders.services import pay_with_wallet, purchase_stock

from .factories import add_keys, buy, make_product


def _available(distributor) -> Decimal:
    return commission_selectors.wallet(distributor)["available"]


def _agent(*, balance="1000.00", **grade_fields):
    grade = GradeFactory(wholesale_discount_bp=8000, may_buy_stock=True, **grade_fields)
    (seller,) = make_chain(1, grade=grade)
    _fund(seller, balance)
    return seller


def _product(keys=20):
    product = make_product(price="100.00", cost_price=Decimal("50.00"), max_quantity_per_order=10)
    add_keys(product, keys, prefix=f"STOCK{keys}")
    return product


def _state(agent, product):
    return (
        _available(agent),
        StockPurchase.objects.count(),
        CardKey.objects.filter(product=product, status=CardKeyStatus.AVAILABLE).count(),
        JournalTransaction.objects.count(),
    )


@pytest.mark.django_db
def test_a_purchase_pays_the_grade_price_of_its_volume_tier_and_delivers_the_keys():
    agent = _agent()
    product = _product()
    GradeVolumeTier.objects.create(grade=agent.grade, product=None, min_quantity=10, rate_bp=9000)

    small = purchase_stock(distributor_id=agent.pk, product=product, quantity="2", token="t1")
    large = purchase_stock(distributor_id=agent.pk, product=product, quantity=10, token="t2")

    assert (small.unit_price, small.total_amount) == (Decimal("80.00"), Decimal("160.00"))
    assert (large.unit_price, large.total_amount) == (Decimal("72.00"), Decimal("720.00"))
    assert _available(agent) == Decimal("120.00")
    assert large.keys.count() == 10
    assert set(CardKey.objects.filter(pk__in=large.keys.values("card_key_id")).values_list("status", "sold_to")) == {
        (CardKeyStatus.SOLD, large.purchase_no)
    }


@pytest.mark.django_db
def test_the_month_volume_counts_toward_the_tier_where_the_merchant_sets_it():
    counted = _agent(stock_tiers_count_month=True)
    single = _agent()
    product = _product(keys=40)
    for grade in (counted.grade, single.grade):
        GradeVolumeTier.objects.create(grade=grade, product=None, min_quantity=10, rate_bp=9000)

    purchase_stock(distributor_id=counted.pk, product=product, quantity=6, token="c1")
    second = purchase_stock(distributor_id=counted.pk, product=product, quantity=6, token="c2")
    purchase_stock(distributor_id=single.pk, product=product, quantity=6, token="s1")
    alone = purchase_stock(distributor_id=single.pk, product=product, quantity=6, token="s2")

    assert second.unit_price == Decimal("72.00")
    assert alone.unit_price == Decimal("80.00")


@pytest.mark.django_db
def test_the_same_token_twice_is_one_purchase():
    agent = _agent()
    product = _product()

    first = purchase_stock(distributor_id=agent.pk, product=product, quantity=3, token="same")
    again = purchase_stock(distributor_id=agent.pk, product=product, quantity=3, token="same")

    assert again.pk == first.pk
    assert _available(agent) == Decimal("760.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (0, "进货数量须在 1–1000 之间"),
        ("-3", "进货数量须在 1–1000 之间"),
        (-3, "进货数量须在 1–1000 之间"),
        (10**12, "进货数量须在 1–1000 之间"),
        ("abc", "进货数量必须是整数"),
        ("2.5", "进货数量必须是整数"),
        (13, "可用余额不足（当前 ¥1000.00）"),
        (21, "可用余额不足"),
    ],
)
def test_bad_quantities_and_a_short_balance_are_refused_and_change_nothing(quantity, message):
    agent = _agent()
    product = _product()
    before = _state(agent, product)

    with pytest.raises(ValidationError, match=message):
        purchase_stock(distributor_id=agent.pk, product=product, quantity=quantity, token="bad")

    assert _state(agent, product) == before


@pytest.mark.django_db
def test_too_few_keys_are_refused_and_change_nothing():
    agent = _agent(balance="100000.00")
    product = _product(keys=3)
    before = _state(agent, product)

    with pytest.raises(ValidationError, match="库存不足：仅剩 3 张"):
        purchase_stock(distributor_id=agent.pk, product=product, quantity=4, token="short")

    assert _state(agent, product) == before


@pytest.mark.django_db
def test_a_grade_not_allowed_to_buy_stock_is_refused_and_nothing_changes():
    agent = _agent()
    type(agent.grade).objects.filter(pk=agent.grade_id).update(may_buy_stock=False)
    product = _product()
    before = _state(agent, product)

    with pytest.raises(ValidationError, match="不能进货"):
        purchase_stock(distributor_id=agent.pk, product=product, quantity=1, token="no")

    assert _state(agent, product) == before


@pytest.mark.django_db
def test_purchased_keys_are_never_delivered_again():
    agent = _agent()
    product = _product(keys=5)

    purchase_stock(distributor_id=agent.pk, product=product, quantity=5, token="all")

    with pytest.raises(InsufficientStock):
        claim_card_keys(product=product, quantity=1, reference="K-later")


@pytest.mark.django_db
def test_the_portal_buys_and_reveals_the_keys_to_the_buyer_only(client):
    agent = _agent()
    other = _agent()
    product = _product()
    client.force_login(agent.user)

    page = client.get(reverse("orders:agent-stock")).content.decode()
    bought = client.post(reverse("orders:agent-stock"), {"product": product.pk, "quantity": "2", "token": "portal-1"})
    purchase = StockPurchase.objects.get()
    mine = client.get(reverse("orders:agent-stock-detail", args=[purchase.purchase_no])).content.decode()
    client.force_login(other.user)
    theirs = client.get(reverse("orders:agent-stock-detail", args=[purchase.purchase_no]))

    assert "¥80.00" in page
    assert bought.status_code == 302
    assert mine.count('data-testid="stock-key"') == 2 and f"STOCK20-{product.pk}-" in mine
    assert theirs.status_code == 404


@pytest.mark.django_db
def test_the_portal_says_why_a_purchase_failed(client):
    agent = _agent(balance="10.00")
    product = _product()
    client.force_login(agent.user)

    response = client.post(reverse("orders:agent-stock"), {"product": product.pk, "quantity": "1", "token": "portal-2"})

    assert response.status_code == 400
    assert "可用余额不足（当前 ¥10.00）" in response.content.decode()
    assert StockPurchase.objects.count() == 0


@pytest.mark.django_db
def test_a_grade_not_allowed_sees_why_in_the_portal(client):
    agent = _agent()
    type(agent.grade).objects.filter(pk=agent.grade_id).update(may_buy_stock=False)
    client.force_login(agent.user)

    page = client.get(reverse("orders:agent-stock")).content.decode()

    assert 'data-testid="stock-not-allowed"' in page


@pytest.mark.django_db(transaction=True)
def test_a_payment_a_purchase_and_a_withdrawal_of_one_balance_never_overdraw_it():
    """¥100 available; at one moment: pay a ¥48 order, buy ¥80 of stock, withdraw ¥60. Any
    two together exceed the balance: exactly one goes through, whichever wins the lock."""
    agent = _agent(balance="100.00", withdrawal_daily_max_amount=Decimal("100000.00"))
    product = _product()
    shop_product = make_product(price="48.00")
    add_keys(shop_product, 1, prefix="SHOP")
    order = buy(shop_product, buyer_user=agent.user)
    account = add_payout_account(distributor=agent, method="alipay", holder_name="张三", account="13800138000")
    barrier = threading.Barrier(3)
    outcomes = {}

    def run(name, action):
        try:
            barrier.wait()
            action()
            outcomes[name] = "ok"
        except ValidationError:
            outcomes[name] = "refused"
        finally:
            connection.close()

    actions = {
        "payment": lambda: pay_with_wallet(order=order, payer=agent.user),
        "purchase": lambda: purchase_stock(distributor_id=agent.pk, product=product, quantity=1, token="race"),
        "withdrawal": lambda: request_withdrawal(
            distributor=agent, payout_account=account, amount="60.00", token="race-w"
        ),
    }
    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spent = {"payment": Decimal("48.00"), "purchase": Decimal("80.00"), "withdrawal": Decimal("60.00")}
    winners = [name for name, outcome in outcomes.items() if outcome == "ok"]
    assert len(outcomes) == 3 and len(winners) == 1
    assert _available(agent) == Decimal("100.00") - spent[winners[0]]
    assert (Order.objects.get(pk=order.pk).paid_at is not None) == (winners == ["payment"])
    assert StockPurchase.objects.count() == (1 if winners == ["purchase"] else 0)


@pytest.mark.django_db(transaction=True)
def test_when_two_of_three_spends_fit_two_go_through_and_the_balance_never_goes_below_zero():
    """¥200 available; at one moment: pay a ¥48 order, buy ¥80 of stock, withdraw ¥90. Any two
    fit, all three do not (¥218): exactly two go through, whichever take the lock first, and what
    is left is ¥200 minus what they spent — never negative."""
    agent = _agent(balance="200.00", withdrawal_daily_max_amount=Decimal("100000.00"))
    product = _product()
    shop_product = make_product(price="48.00")
    add_keys(shop_product, 1, prefix="SHOP2")
    order = buy(shop_product, buyer_user=agent.user)
    account = add_payout_account(distributor=agent, method="alipay", holder_name="张三", account="13800138000")
    barrier = threading.Barrier(3)
    outcomes = {}

    def run(name, action):
        try:
            barrier.wait()
            action()
            outcomes[name] = "ok"
        except ValidationError:
            outcomes[name] = "refused"
        finally:
            connection.close()

    actions = {
        "payment": lambda: pay_with_wallet(order=order, payer=agent.user),
        "purchase": lambda: purchase_stock(distributor_id=agent.pk, product=product, quantity=1, token="race2"),
        "withdrawal": lambda: request_withdrawal(
            distributor=agent, payout_account=account, amount="90.00", token="race2-w"
        ),
    }
    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spent = {"payment": Decimal("48.00"), "purchase": Decimal("80.00"), "withdrawal": Decimal("90.00")}
    winners = [name for name, outcome in outcomes.items() if outcome == "ok"]
    assert len(outcomes) == 3 and len(winners) == 2
    assert _available(agent) == Decimal("200.00") - sum(spent[name] for name in winners)
    assert _available(agent) >= 0
