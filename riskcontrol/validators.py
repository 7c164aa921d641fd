"""Validators for the real-name check: the ID number (GB 11643), bank card (Luhn), mainland
mobile and name, each with a message a distributor can act on; and the masks shown everywhere."""

import re
from datetime import date

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"
MOBILE_RE = re.compile(r"1[3-9]\d{9}", re.ASCII)
NAME_RE = re.compile(r"[\u4e00-\u9fff·•]{2,20}|[A-Za-z][A-Za-z .'-]{1,59}")
MINIMUM_AGE = 18


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character of the first 17 digits (ISO 7064 MOD 11-2)."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first17, ID_WEIGHTS, strict=True)
    )
    return ID_CHECK_CHARS[total % 11]


def birth_date_of(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def validate_id_number(
    raw: str, *, check_age: bool = True, today: date | None = None
) -> str:
    """The normalised 18-character resident ID number, or ValidationError saying what is wrong."""
    number = re.sub(r"\s+", "", str(raw or "")).upper()
    if not number:
        raise ValidationError(_("请填写身份证号"), code="required")
    if not re.fullmatch(r"\d{17}[\dX]", number, re.ASCII):
        raise ValidationError(
            _("身份证号应为 18 位，前 17 位为数字，最后一位为数字或 X"), code="format"
        )
    born = birth_date_of(number)
    today = today or timezone.localdate()
    if born is None or born > today or born.year < 1900:
        raise ValidationError(_("身份证号中的出生日期无效"), code="birth_date")
    if id_check_char(number[:17]) != number[17]:
        raise ValidationError(
            _("身份证号校验位不正确，请核对后重新输入"), code="check_digit"
        )
    if check_age and age_on(born, today) < MINIMUM_AGE:
        raise ValidationError(_("未满 18 周岁不能完成实名认证"), code="under_age")
    return number


def luhn_is_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def validate_bank_card(raw: str) -> str:
    number = re.sub(r"[\s-]+", "", str(raw or ""))
    if not number:
        raise ValidationError(_("请填写银行卡号"), code="required")
    if not re.fullmatch(r"\d{12,19}", number, re.ASCII):
        raise ValidationError(_("银行卡号应为 12–19 位数字"), code="format")
    if not luhn_is_valid(number):
        raise ValidationError(_("银行卡号校验失败，请核对卡号"), code="check_digit")
    return number


def validate_mobile(raw: str) -> str:
    number = re.sub(r"[\s-]+", "", str(raw or ""))
    number = number.removeprefix("+86")
    if not number:
        raise ValidationError(_("请填写手机号"), code="required")
    if not MOBILE_RE.fullmatch(number):
        raise ValidationError(
            _("手机号应为 11 位中国大陆手机号（1 开头）"), code="format"
        )
    return number


def validate_real_name(raw: str) -> str:
    name = re.sub(r"\s+", " ", str(raw or "")).strip()
    if re.search(r"[\u4e00-\u9fff]", name):
        name = name.replace(" ", "")  # 张 三 is 张三
    if not name:
        raise ValidationError(_("请填写真实姓名"), code="required")
    if not NAME_RE.fullmatch(name):
        raise ValidationError(
            _("姓名应为 2–20 个汉字（可含 ·）或英文字母"), code="format"
        )
    return name


def mask_name(name: str) -> str:
    return (name[:1] + "*" * max(len(name) - 1, 1))[:40]


def mask_id_number(number: str) -> str:
    return f"{number[:3]}{'*' * 11}{number[-4:]}" if len(number) >= 8 else "****"


def mask_bank_card(number: str) -> str:
    return f"**** **** **** {number[-4:]}"


def mask_mobile(number: str) -> str:
    return f"{number[:3]}****{number[-4:]}"
