"""One parser for integers and one for decimals (money goes through the latter): ASCII digits
only, a clear message for anything else."""

from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from kamen.money import InvalidAmount, parse_amount
from kamen.parsing import DecimalField, IntegerField, InvalidNumber, parse_decimal, parse_integer

from .number_inputs import NOT_NUMBERS

ASCII_SPACES = st.text(alphabet=" \t", max_size=3)


@given(st.integers(min_value=-(10**30), max_value=10**30), ASCII_SPACES, ASCII_SPACES)
def test_every_ascii_integer_reads_as_itself(number, before, after):
    assert parse_integer(f"{before}{number}{after}") == number


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**12), max_value=10**12))
def test_every_amount_in_fen_reads_as_itself(amount):
    text = f"{amount:f}"
    assert parse_decimal(text) == amount
    if amount > 0:
        assert parse_amount(text) == amount


@given(st.text(max_size=12))
def test_any_text_is_an_ascii_number_or_refused_with_the_message(text):
    for parse in (parse_integer, parse_decimal):
        try:
            value = parse(text)
        except InvalidNumber as error:
            assert error.message
        else:
            stripped = text.strip(" \t\r\n")
            assert stripped.isascii() and set(stripped) <= set("-.0123456789")
            assert value == (int(stripped) if parse is parse_integer else Decimal(stripped))


@given(st.text(alphabet=st.characters(blacklist_characters="0123456789.- \t\r\n"), min_size=1, max_size=3))
def test_any_other_character_inside_a_number_is_refused(intruder):
    for text in (f"1{intruder}0", f"{intruder}10", f"10{intruder}", f"1.{intruder}5"):
        with pytest.raises(InvalidNumber):
            parse_decimal(text)
        with pytest.raises(InvalidNumber):
            parse_integer(text)


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_lookalikes_are_refused_by_every_parser_and_field(text):
    with pytest.raises(InvalidNumber):
        parse_integer(text)
    with pytest.raises(InvalidNumber):
        parse_decimal(text)
    with pytest.raises(InvalidAmount):
        parse_amount(text)
    with pytest.raises(ValidationError, match="半角数字"):
        IntegerField().clean(text)
    with pytest.raises(ValidationError, match="半角数字"):
        DecimalField(max_digits=14, decimal_places=2).clean(text)


@pytest.mark.parametrize("text", ["1e1", "١٠", "１０"])
def test_django_alone_would_have_read_them(text):
    """Why the wrapper exists (if Django ever becomes strict, this says so)."""
    assert forms.DecimalField().clean(text) == Decimal(10)


def test_floats_and_booleans_are_not_numbers_here():
    for value in (True, 1.5, None, [1]):
        with pytest.raises(InvalidNumber):
            parse_decimal(value)
    assert parse_integer(7) == 7 and parse_decimal(Decimal("1.50")) == Decimal("1.50")
