"""Where people type numbers (issue 14, item 9): look-alike numbers are refused with a clear
message, nothing changes, and none of them is a 500."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from commissions import selectors
from commissions.models import Withdrawal
from commissions.services.withdrawals import add_payout_account, request_withdrawal
from commissions.tests.test_withdrawals import agent, alipay  # noqa: F401  (fixtures)
from kamen import totp
from riskcontrol.services.blacklist import add_to_blacklist
from riskcontrol.models import BlacklistEntry
from riskcontrol.tests.conftest import risk_staff  # noqa: F401
from riskcontrol.validators import validate_bank_card

from .number_inputs import NOT_NUMBERS

pytestmark = pytest.mark.django_db
AMOUNTS = ["1e1", "1E+1", "١٠", "１０", "1,0,0", "10²", "1_0", "NaN", "+10"]


@pytest.mark.parametrize("amount", AMOUNTS)
def test_a_withdrawal_of_a_lookalike_amount_is_refused(agent, alipay, amount):  # noqa: F811
    with pytest.raises(ValidationError, match="正确的金额"):
        request_withdrawal(distributor=agent, payout_account=alipay, amount=amount, token="t")

    assert not Withdrawal.objects.exists()
    assert selectors.wallet(agent)["available"] == Decimal("1000.00")


@pytest.mark.parametrize("value", ["²", "١٢", "１２", "12²", "-1", "1e1"])
def test_a_blacklisted_distributor_must_be_an_ascii_number(risk_staff, value):  # noqa: F811
    with pytest.raises(ValidationError, match="编号"):
        add_to_blacklist(kind="distributor", value=value, reason="x", actor=risk_staff)

    assert not BlacklistEntry.objects.exists()


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "12345²", "²²²²²²", "-12345", "12 34 5\u0661"])
def test_a_two_factor_code_in_other_digits_is_simply_wrong(code):
    secret = totp.new_secret()

    assert totp.verify(secret, code) is None


@pytest.mark.parametrize(
    ("method", "account"),
    [("bank_card", "٦٢٢٢٠٢٠٢٠٠١١٢٢٣٣٤٤٥"), ("alipay", "١٣٨٠٠١٣٨٠٠٠"), ("alipay", "１３８００１３８０００")],
)
def test_payout_accounts_in_other_digits_are_refused(agent, method, account):  # noqa: F811
    with pytest.raises(ValidationError):
        add_payout_account(distributor=agent, method=method, holder_name="张三", account=account, bank_name="工行")


@pytest.mark.parametrize("number", ["٦٢٢٢٠٢٠٢٠٠١١٢٢٣٣٤٤٥", "６２２２０２１２３４５６７８９０１２８"])
def test_real_name_bank_cards_in_other_digits_are_refused(number):
    with pytest.raises(ValidationError):
        validate_bank_card(number)


def test_the_sweep_inputs_cover_the_issue():
    assert {"1e1", "1E+1", "١٠", "1,0,0", "²", "１０"} <= set(NOT_NUMBERS)
