"""The commission-rule guard is checked when the settings it reads change — grades (rates,
discounts, grade prices, volume tiers, the right to open a sub-store) and product prices — not
only when a rule is saved (issue 14): a change that would let the saved rules breach a cap is
refused, naming the rule and the setting that clash, and nothing changes; otherwise the rule
set could be left failing, and every later rule save refused."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from catalog.models import Product
from catalog.services import create_product, set_product_price, update_product
from commissions.models import CommissionRule
from commissions.services import rule_set_problems, save_commission_rule
from distribution.models import Grade, GradeProductPrice, GradeVolumeTier

from .factories import GradeFactory, ProductFactory

RULES = "全部商品 · 全部等级 · L1 · 15.00%"


@pytest.fixture
def network(owner_user):
    """A product (retail 100, cost 60, resale up to 120), a grade buying at 90 % that may not
    open a sub-store, and rules of 15 % + 5 %: at 120 a sub-store would pay 24 + 30 of a 60
    margin, fine; at a cost of 80 it would pay 24 + 40, over the margin."""
    grade = GradeFactory(
        name="金牌",
        wholesale_discount_bp=9000,
        may_open_sub_store=False,
        commission_level1_bp=0,
        commission_level2_bp=0,
        commission_level3_bp=0,
    )
    product = ProductFactory(
        name="点卡",
        retail_price=Decimal("100.00"),
        cost_price=Decimal("60.00"),
        max_resale_price=Decimal("120.00"),
    )
    save_commission_rule(rule=CommissionRule(level=1, rate_bp=1500), actor=owner_user)
    save_commission_rule(rule=CommissionRule(level=2, rate_bp=500), actor=owner_user)
    assert rule_set_problems() == []
    return grade, product


def _grade_form(grade, *, prices=(), tiers=(), **changes):
    data = {
        "name": grade.name,
        "rank": grade.rank,
        "wholesale_discount_bp": grade.wholesale_discount_bp,
        "commission_level1_bp": grade.commission_level1_bp,
        "commission_level2_bp": grade.commission_level2_bp,
        "commission_level3_bp": grade.commission_level3_bp,
        "may_recruit": "on",
        "withdrawal_min_amount": grade.withdrawal_min_amount,
        "withdrawal_daily_max_amount": grade.withdrawal_daily_max_amount,
        "admission_mode": grade.admission_mode,
        "deposit_amount": grade.deposit_amount,
        "first_order_amount": grade.first_order_amount,
        "product_prices-TOTAL_FORMS": len(prices),
        "product_prices-INITIAL_FORMS": 0,
        "volume_tiers-TOTAL_FORMS": len(tiers),
        "volume_tiers-INITIAL_FORMS": 0,
    }
    if grade.may_open_sub_store:
        data["may_open_sub_store"] = "on"
    for index, (product, unit_cost) in enumerate(prices):
        data[f"product_prices-{index}-product"] = product.pk
        data[f"product_prices-{index}-unit_cost"] = unit_cost
    for index, (min_quantity, rate_bp) in enumerate(tiers):
        data[f"volume_tiers-{index}-min_quantity"] = min_quantity
        data[f"volume_tiers-{index}-rate_bp"] = rate_bp
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def _grade_state(grade):
    row = Grade.objects.get(pk=grade.pk)
    return (
        row.may_open_sub_store,
        row.wholesale_discount_bp,
        row.commission_level3_bp,
        GradeProductPrice.objects.filter(grade=grade).count(),
        GradeVolumeTier.objects.filter(grade=grade).count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "form", "setting"),
    [
        ({"wholesale_discount_bp": 8000}, {"may_open_sub_store": True}, "等级“金牌”可开分站，拿货价 ¥80.00"),
        ({"may_open_sub_store": True}, {"wholesale_discount_bp": 8000}, "等级“金牌”可开分站，拿货价 ¥80.00"),
        ({"may_open_sub_store": True}, {"prices": [("product", "80.00")]}, "等级“金牌”可开分站，拿货价 ¥80.00"),
        ({"may_open_sub_store": True}, {"tiers": [(10, 8800)]}, "等级“金牌”可开分站，拿货价 ¥79.20"),
        ({}, {"commission_level3_bp": 2000}, "等级“金牌”第 3 级佣金 20.00%"),
    ],
)
def test_a_grade_change_that_would_break_the_rules_is_refused_naming_the_rule_and_the_setting(
    client, owner_user, network, given, form, setting
):
    grade, product = network
    Grade.objects.filter(pk=grade.pk).update(**given)
    grade.refresh_from_db()
    assert rule_set_problems() == []
    before = _grade_state(grade)
    form = dict(form)
    prices = [(product, cost) for _name, cost in form.pop("prices", [])]
    tiers = form.pop("tiers", [])
    client.force_login(owner_user)

    response = client.post(
        reverse("admin:distribution_grade_change", args=[grade.pk]),
        _grade_form(grade, prices=prices, tiers=tiers, **form),
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "不能保存“等级“金牌”的设置”" in page
    assert RULES in page and setting in page
    assert _grade_state(grade) == before
    assert rule_set_problems() == []


@pytest.mark.django_db
def test_a_grade_change_that_keeps_the_rules_inside_the_caps_is_saved(client, owner_user, network):
    grade, _product = network
    client.force_login(owner_user)

    client.post(
        reverse("admin:distribution_grade_change", args=[grade.pk]),
        _grade_form(grade, may_open_sub_store=True, wholesale_discount_bp=9500),
    )

    assert _grade_state(grade)[:2] == (True, 9500)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"cost_price": Decimal("75.00")}, "“点卡”最高售价 ¥120.00、成本价 ¥75.00"),
        ({"max_resale_price": Decimal("160.00")}, "“点卡”最高售价 ¥160.00、成本价 ¥60.00"),
        ({"retail_price": Decimal("70.00")}, "“点卡”零售价 ¥70.00、成本价 ¥60.00"),
    ],
)
def test_a_product_price_change_that_would_break_the_rules_is_refused(owner_user, network, change, setting):
    grade, product = network
    Grade.objects.filter(pk=grade.pk).update(may_open_sub_store=True)
    before = Product.objects.filter(pk=product.pk).values(*change).get()

    with pytest.raises(ValidationError) as refused:
        set_product_price(product=product, actor=owner_user, **change)

    message = " ".join(refused.value.messages)
    assert "不能保存“商品“点卡”的价格”" in message and RULES in message and setting in message
    assert Product.objects.filter(pk=product.pk).values(*change).get() == before
    assert rule_set_problems() == []


@pytest.mark.django_db
def test_a_new_product_whose_margin_the_rules_would_breach_is_refused(owner_user, network):
    _grade, product = network

    with pytest.raises(ValidationError, match="零售价 ¥100.00、成本价 ¥85.00"):
        create_product(
            actor=owner_user,
            category=product.category,
            name="薄利卡",
            product_type=product.product_type,
            retail_price=Decimal("100.00"),
            cost_price=Decimal("85.00"),
        )

    assert not Product.objects.filter(name="薄利卡").exists()


@pytest.mark.django_db
def test_the_product_admin_shows_the_refusal_instead_of_an_error_page(client, owner_user, network):
    grade, product = network
    Grade.objects.filter(pk=grade.pk).update(may_open_sub_store=True)
    client.force_login(owner_user)
    page = client.get(reverse("admin:catalog_product_change", args=[product.pk]))
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name in form.fields}
    data.update(
        {
            "category": product.category_id,
            "cost_price": "75.00",
            "custom_fields-TOTAL_FORMS": 0,
            "custom_fields-INITIAL_FORMS": 0,
        }
    )
    for formset in page.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        data[f"{prefix}-TOTAL_FORMS"] = 0
        data[f"{prefix}-INITIAL_FORMS"] = 0
    data = {name: ("on" if value is True else value) for name, value in data.items() if value is not False}

    response = client.post(reverse("admin:catalog_product_change", args=[product.pk]), data, follow=True)

    assert response.status_code == 200
    assert "不能保存“商品“点卡”的价格”" in response.content.decode()
    assert Product.objects.get(pk=product.pk).cost_price == Decimal("60.00")


@pytest.mark.django_db
def test_a_clash_already_there_does_not_block_an_unrelated_change_and_a_rule_save_names_it(owner_user, network):
    """A rule set left failing before these checks existed: unrelated changes still save, and
    a rule save that is refused says which rule and which setting clash."""
    grade, product = network
    Grade.objects.filter(pk=grade.pk).update(may_open_sub_store=True, wholesale_discount_bp=8000)

    update_product(product=product, actor=owner_user, name="点卡（新版）")
    with pytest.raises(ValidationError) as refused:
        save_commission_rule(rule=CommissionRule(level=3, rate_bp=100), actor=owner_user)

    message = " ".join(refused.value.messages)
    assert RULES in message and "全部商品 · 全部等级 · L2 · 5.00%" in message
    assert "等级“金牌”可开分站，拿货价 ¥80.00" in message
    assert Product.objects.get(pk=product.pk).name == "点卡（新版）"
