"""The merchant's fee settings per gateway (issue 18 §1, docs/adr/0020)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from orders.gateways.configured import FeeSchedule, fee_schedule

D = Decimal


@pytest.mark.parametrize(
    "amount, rate, minimum, fee",
    [
        ("100.00", "0.6", "0", "0.60"),
        ("0.80", "0.6", "0", "0.00"),  # 0.0048 rounds half up to nothing
        ("0.90", "0.6", "0", "0.01"),  # 0.0054 rounds half up to one fen
        ("1.00", "0.6", "0.10", "0.10"),  # the minimum
        ("0.05", "0.6", "0.10", "0.05"),  # never more than the payment
        ("100.00", "2", "0", "2.00"),
    ],
)
def test_a_fee_is_the_rate_rounded_half_up_at_least_the_minimum_never_above_the_payment(amount, rate, minimum, fee):
    with override_settings(ALIPAY_FEE_RATE=rate, ALIPAY_FEE_MINIMUM=minimum):
        assert fee_schedule("alipay").fee(D(amount)) == D(fee)


def test_ways_in_that_are_not_a_gateway_pay_no_fee():
    assert fee_schedule("manual") == FeeSchedule()
    assert fee_schedule("wallet").fee(D("100.00")) == D("0.00")


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("WECHATPAY_FEE_RATE", "abc", "WECHATPAY_FEE_RATE is not a number"),
        ("WECHATPAY_FEE_RATE", "60", "from 0 to 10"),  # 60 % is a typo for 0.6
        ("WECHATPAY_FEE_RATE", "-1", "from 0 to 10"),
        ("WECHATPAY_FEE_MINIMUM", "0.001", "whole fen"),
        ("WECHATPAY_FEE_REFUNDED", "yes", "must be 1"),
    ],
)
def test_a_bad_fee_setting_stops_the_start_naming_it(setting, value, words):
    with override_settings(**{setting: value}):
        with pytest.raises(ImproperlyConfigured, match=words):
            fee_schedule("wechatpay")
        with pytest.raises(SystemCheckError, match=setting):
            call_command("check")
