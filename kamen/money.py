"""Money: CNY as Decimal to the fen. One rounding helper, one rule.

The rule (docs/adr/0001-money.md): amounts that are split (commissions, shares) round *down*
to the fen and the remainder stays with the merchant; prices entered by people must already
be whole fen and are rejected otherwise, never rounded silently.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from kamen.parsing import parse_decimal

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_DIGITS = 14
DECIMAL_PLACES = 2
# The field arguments every money column uses: DecimalField(..., **MONEY).
MONEY = {"max_digits": MAX_DIGITS, "decimal_places": DECIMAL_PLACES}


class InvalidAmount(ValueError):
    pass


def to_fen(value, *, rounding=ROUND_DOWN) -> Decimal:
    """Round to the fen; splits round down (the remainder stays with the merchant)."""
    return Decimal(value).quantize(FEN, rounding=rounding)


def round_half_up(value) -> Decimal:
    """For amounts computed from a price and a rate that a person will see, e.g. a discount."""
    return to_fen(value, rounding=ROUND_HALF_UP)


def parse_amount(raw, *, allow_zero: bool = False, allow_negative: bool = False) -> Decimal:
    """Parse a user-entered amount; raise InvalidAmount with a clear message. ASCII digits and
    one point only (kamen.parsing): no exponent, no other script's digits, no commas."""
    try:
        value = parse_decimal(raw)
    except (InvalidOperation, ValueError):
        raise InvalidAmount(f"“{raw}” is not an amount") from None
    if not value.is_finite():
        raise InvalidAmount(f"“{raw}” is not an amount")
    if value != value.quantize(FEN):
        raise InvalidAmount(f"{raw} has more than two decimal places (amounts are in fen)")
    if value < 0 and not allow_negative:
        raise InvalidAmount(f"{raw} is negative")
    if value == 0 and not allow_zero:
        raise InvalidAmount("the amount must be greater than zero")
    return value.quantize(FEN)


def format_cny(value) -> str:
    return f"¥{to_fen(value, rounding=ROUND_HALF_UP):,.2f}"
