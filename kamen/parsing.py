"""Numbers typed by people: ASCII digits only, one parser for integers, one for decimals.

Python and Django are generous where a shop must be strict. ``"²".isdigit()`` is true but
``int("²")`` fails (a 500 where ``isdigit`` guarded an ``int``); ``int`` and ``Decimal``
accept Arabic-Indic (``١٠``) and fullwidth (``１０``) digits, ``1_0`` and surrounding
Unicode spaces; ``Decimal`` takes ``1e1``, ``1E+1``, ``NaN`` and ``Infinity``; and the old
amount parser dropped every comma, so ``1,0,0`` was ¥100. Django's ``forms.DecimalField`` and
``forms.IntegerField`` inherit all of it. Every number a person types goes through
:func:`parse_integer` or :func:`parse_decimal` (money through ``kamen.money.parse_amount``,
which uses the latter), and every form field through :class:`IntegerField` /
:class:`DecimalField` (the admin's model forms too: ``kamen.admin_site``).

Accepted: optional ASCII spaces around, an optional leading ``-``, ASCII digits, and for
decimals one ``.`` followed by digits. Nothing else. :class:`InvalidNumber` is a
``ValueError``, so callers that already turned ``ValueError`` into a message keep their
message.
"""

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Longer input is refused before any conversion (int() of thousands of digits costs time).
MAX_LENGTH = 40
INTEGER = re.compile(r"-?[0-9]+")
DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
ASCII_SPACE = " \t\r\n"

INTEGER_MESSAGE = _("请输入整数，只用半角数字 0–9（例如 12）")
DECIMAL_MESSAGE = _("请输入数字，只用半角数字 0–9 和小数点（例如 12.50）")


class InvalidNumber(ValueError):
    """Not a number as this project reads numbers; ``message`` says what is expected."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def _text(raw, message) -> str:
    if not isinstance(raw, str):
        raise InvalidNumber(message)
    text = raw.strip(ASCII_SPACE)
    if not text or len(text) > MAX_LENGTH:
        raise InvalidNumber(message)
    return text


def parse_integer(raw) -> int:
    """An int from an int or from text of ASCII digits (``"-12"``, ``" 7 "``); else InvalidNumber."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = _text(raw, INTEGER_MESSAGE)
    if not INTEGER.fullmatch(text):
        raise InvalidNumber(INTEGER_MESSAGE)
    return int(text)


def parse_decimal(raw) -> Decimal:
    """A finite Decimal from an int, a Decimal or text like ``"12"``, ``"-0.5"``; else
    InvalidNumber. Floats are refused: money is never a float."""
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise InvalidNumber(DECIMAL_MESSAGE)
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return Decimal(raw)
    text = _text(raw, DECIMAL_MESSAGE)
    if not DECIMAL.fullmatch(text):
        raise InvalidNumber(DECIMAL_MESSAGE)
    return Decimal(text)


def is_ascii_digits(text) -> bool:
    """What ``str.isdigit`` was meant to say: non-empty text of 0–9 only (``"²".isdigit()``
    and ``"١٠".isdigit()`` are true)."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


def is_ascii_integer(raw) -> bool:
    """What ``str.isdigit`` was meant to say before an ``int()``."""
    try:
        parse_integer(raw)
    except InvalidNumber:
        return False
    return True


class IntegerField(forms.IntegerField):
    """Django's IntegerField, reading ASCII digits only."""

    default_error_messages = {"invalid": INTEGER_MESSAGE}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_integer(value)
        except InvalidNumber:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class DecimalField(forms.DecimalField):
    """Django's DecimalField, reading ASCII digits and one point only (no exponent, no NaN)."""

    default_error_messages = {"invalid": DECIMAL_MESSAGE}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_decimal(value)
        except InvalidNumber:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
