"""Real-name check: validators (hypothesis for the check digits), the sandbox provider,
encryption at rest, masks, one person one account, and the selector withdrawals call."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from distribution.tests.factories import DistributorFactory
from riskcontrol.kyc import reveal_real_name, submit_real_name
from riskcontrol.models import RealNameStatus, RealNameVerification
from riskcontrol.selectors import is_real_name_verified
from riskcontrol.validators import (
    id_check_char,
    luhn_is_valid,
    validate_bank_card,
    validate_id_number,
    validate_mobile,
    validate_real_name,
)

ADULT_ID = "11010519491231002X"
CARD = "6222021234567890128"  # Luhn-valid


def luhn_complete(prefix: str) -> str:
    for digit in "0123456789":
        if luhn_is_valid(prefix + digit):
            return prefix + digit
    raise AssertionError


# --- validators --------------------------------------------------------------------------------
@given(
    region=st.integers(min_value=110000, max_value=659999),
    born=st.dates(min_value=date(1930, 1, 1), max_value=date(2000, 12, 31)),
    sequence=st.integers(min_value=0, max_value=999),
)
def test_every_id_number_with_its_check_char_is_accepted_and_any_other_char_refused(
    region, born, sequence
):
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    right = id_check_char(first17)

    assert (
        validate_id_number(first17 + right, today=date(2026, 11, 23)) == first17 + right
    )
    for wrong in sorted(set("0123456789X") - {right})[:3]:
        with pytest.raises(ValidationError, match="校验位"):
            validate_id_number(first17 + wrong, today=date(2026, 11, 23))


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_luhn_completion_always_validates_and_a_changed_digit_never_does(prefix):
    number = luhn_complete(prefix)
    changed = number[:-1] + str((int(number[-1]) + 1) % 10)

    assert luhn_is_valid(number)
    assert not luhn_is_valid(changed)


def test_known_examples():
    assert validate_id_number(ADULT_ID.lower()) == ADULT_ID
    assert validate_bank_card("6222 0212 3456 7890 128") == CARD
    assert validate_mobile("+86 138-1234-5678") == "13812345678"
    assert validate_real_name(" 张  三 ") == "张三"
    assert validate_real_name("Li  Lei") == "Li Lei"


@pytest.mark.parametrize(
    ("validator", "value", "message"),
    [
        (validate_id_number, "1101051949123100", "18 位"),
        (validate_id_number, "110105194913310021", "出生日期"),
        (validate_id_number, "110105209901010011", "出生日期"),
        (validate_bank_card, "6222021234567890120", "校验失败"),
        (validate_bank_card, "62220212", "12–19"),
        (validate_mobile, "12812345678", "11 位"),
        (validate_real_name, "<script>", "汉字"),
        (validate_real_name, "", "请填写"),
    ],
)
def test_bad_values_get_a_clear_message(validator, value, message):
    with pytest.raises(ValidationError, match=message):
        validator(value)


def test_a_minor_is_refused():
    first17 = "110105" + "20100101" + "001"
    with pytest.raises(ValidationError, match="18 周岁"):
        validate_id_number(first17 + id_check_char(first17), today=date(2026, 11, 23))


# --- the service -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_verified_distributor_is_stored_encrypted_and_masked():
    distributor = DistributorFactory()

    verification = submit_real_name(
        distributor=distributor,
        name="张三",
        id_number=ADULT_ID,
        bank_card=CARD,
        mobile="13812345678",
    )

    assert verification.status == RealNameStatus.VERIFIED
    assert is_real_name_verified(distributor=distributor)
    row = str(RealNameVerification.objects.filter(pk=verification.pk).values().first())
    for secret in (ADULT_ID, CARD, "13812345678", "张三"):
        assert secret not in row
    assert verification.id_number_mask == "110***********002X"
    assert (
        verification.bank_card_mask.endswith("0128")
        and verification.mobile_mask == "138****5678"
    )
    assert reveal_real_name(verification).id_number == ADULT_ID


@pytest.mark.django_db
def test_a_mismatch_is_recorded_as_failed_and_not_verified():
    distributor = DistributorFactory()

    verification = submit_real_name(
        distributor=distributor,
        name="张三",
        id_number=ADULT_ID,
        bank_card=CARD,
        mobile="13812340000",
    )

    assert (
        verification.status == RealNameStatus.FAILED
        and "同一人" in verification.failure_reason
    )
    assert not is_real_name_verified(distributor=distributor)


@pytest.mark.django_db
def test_a_provider_outage_changes_nothing():
    distributor = DistributorFactory()

    with pytest.raises(ValidationError, match="暂时不可用"):
        submit_real_name(
            distributor=distributor,
            name="张三",
            id_number=ADULT_ID,
            bank_card=CARD,
            mobile="13812349999",
        )

    assert not RealNameVerification.objects.exists()


@pytest.mark.django_db
def test_one_id_number_verifies_one_distributor_only():
    submit_real_name(
        distributor=DistributorFactory(),
        name="张三",
        id_number=ADULT_ID,
        bank_card=CARD,
        mobile="13812345678",
    )

    with pytest.raises(ValidationError, match="其他分销商"):
        submit_real_name(
            distributor=DistributorFactory(),
            name="张三",
            id_number=ADULT_ID,
            bank_card=CARD,
            mobile="13812345678",
        )


@pytest.mark.django_db
def test_the_portal_page_verifies_and_shows_masks_only(client):
    distributor = DistributorFactory()
    client.force_login(distributor.user)
    url = reverse("riskcontrol:real-name")

    bad = client.post(
        url,
        {
            "name": "<img src=x onerror=alert(1)>",
            "id_number": "123",
            "bank_card": "1",
            "mobile": "2",
        },
    )
    good = client.post(
        url,
        {
            "name": "张三",
            "id_number": ADULT_ID,
            "bank_card": CARD,
            "mobile": "13812345678",
        },
    )
    page = client.get(url)

    assert bad.status_code == 400
    assert "<img src=x" not in bad.content.decode() and "18 位" in bad.content.decode()
    assert good.status_code == 302
    body = page.content.decode()
    assert "110***********002X" in body and ADULT_ID not in body and CARD not in body
