"""Parsing card-key import text: every line either becomes a key or is rejected with a reason.

Formats: ``secret``; ``card_no secret`` (whitespace); ``card_no<sep>secret[<sep>expires]``
with a separator among ``,`` ``;`` tab ``|`` ``----``; or ``auto``, which looks at the first line.
Nothing here touches the database: duplicates against stock are the service's job.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.utils import timezone
from django.utils.translation import gettext as _

FORMATS = ("auto", "secret", "card_no_secret", "separated")
SEPARATORS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|", "----": "----"}
MAX_CARD_NO = 128
MAX_SECRET = 512
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d", "%Y/%m/%d %H:%M")
_WHITESPACE = re.compile(r"\s+")


class ImportFileError(ValueError):
    """The upload as a whole cannot be read (binary, undecodable, too large, wrong type)."""


class ParsedKey(NamedTuple):
    """A tuple rather than a frozen dataclass: 100,000 of them are built per import, and a
    tuple is several times cheaper to create."""

    line_no: int
    card_no: str
    secret: str
    expires_at: datetime | None

    @property
    def identity(self) -> str:
        """What makes a key the same key: card number and secret together."""
        return f"{self.card_no}\x00{self.secret}"


@dataclass
class ParseResult:
    keys: list[ParsedKey] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    total_lines: int = 0


def decode_import_file(raw: bytes, *, filename: str, max_bytes: int) -> str:
    if not filename.lower().endswith((".txt", ".csv")):
        raise ImportFileError(_("只支持 .txt 或 .csv 文件"))
    if len(raw) > max_bytes:
        raise ImportFileError(_("文件过大：上限 %(limit)d MB") % {"limit": max_bytes // (1024 * 1024)})
    if b"\x00" in raw:
        raise ImportFileError(_("这不是文本文件（包含二进制内容）"))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFileError(_("无法识别文件编码：请保存为 UTF-8 或 GB18030（GBK）"))


def _has_control_characters(value: str) -> bool:
    if value.isprintable():  # C-speed fast path: printable text has no Cc/Cf characters
        return False
    return any(unicodedata.category(char) in {"Cc", "Cf"} for char in value)


def _parse_expiry(raw: str) -> datetime:
    for date_format in DATE_FORMATS:
        try:
            return timezone.make_aware(datetime.strptime(raw.strip(), date_format))
        except ValueError:
            continue
    raise ValueError(raw)


def _detect(first_line: str) -> tuple[str, str | None]:
    for separator in ("----", "\t", ",", ";", "|"):
        if separator in first_line:
            return "separated", separator
    if _WHITESPACE.search(first_line.strip()):
        return "card_no_secret", None
    return "secret", None


def parse_card_key_lines(
    text: str, *, input_format: str = "auto", separator: str | None = None, default_expires_at=None
) -> ParseResult:
    if input_format not in FORMATS:
        raise ValueError(_("未知的导入格式：%(format)s") % {"format": input_format})
    if separator:
        if separator not in SEPARATORS:
            raise ValueError(_("不支持的分隔符：%(separator)s") % {"separator": separator})
        separator = SEPARATORS[separator]
        input_format = "separated" if input_format == "auto" else input_format
    result = ParseResult()
    keys, rejected = result.keys, result.rejected
    first_line_of: dict[str, int] = {}
    now = timezone.now()
    total_lines = 0
    # One pass, run for every line of a 100,000-line import: the common case (a valid key) takes
    # the fewest steps; every check of the original rule is still made, in the same order.
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line or line.isspace():
            continue
        total_lines += 1
        if input_format == "auto" or (input_format == "separated" and separator is None):
            input_format, separator = _detect(line)
        reason = None
        card_no, secret, expires_at = "", "", default_expires_at
        if input_format == "secret":
            secret = line.strip()
        elif input_format == "card_no_secret":
            parts = _WHITESPACE.split(line.strip())
            if len(parts) != 2:
                reason = _("应为“卡号 卡密”两段，实际 %(count)d 段") % {"count": len(parts)}
            else:
                card_no, secret = parts
        else:
            parts = line.split(separator)
            if len(parts) == 2:
                card_no, secret = parts[0].strip(), parts[1].strip()
            elif len(parts) == 3:
                card_no, secret, raw_expiry = parts[0].strip(), parts[1].strip(), parts[2].strip()
                if raw_expiry:
                    try:
                        expires_at = _parse_expiry(raw_expiry)
                    except ValueError:
                        reason = _("到期时间“%(value)s”无法识别，请用 2026-12-31 或 2026-12-31 23:59") % {"value": raw_expiry[:40]}
            else:
                reason = _("应为“卡号、卡密[、到期时间]”2 到 3 段，实际 %(count)d 段") % {"count": len(parts)}
        if reason is None:
            if not secret:
                reason = _("卡密为空")
            elif len(secret) > MAX_SECRET:
                reason = _("卡密过长（最多 %(max)d 个字符）") % {"max": MAX_SECRET}
            elif len(card_no) > MAX_CARD_NO:
                reason = _("卡号过长（最多 %(max)d 个字符）") % {"max": MAX_CARD_NO}
            elif not (card_no.isprintable() and secret.isprintable()) and (
                _has_control_characters(card_no) or _has_control_characters(secret)
            ):
                reason = _("包含不可见的控制字符")
            elif expires_at is not None and expires_at <= now:
                reason = _("到期时间已过")
        if reason is None:
            identity = f"{card_no}\x00{secret}"
            earlier = first_line_of.get(identity)
            if earlier is None:
                first_line_of[identity] = line_no
                keys.append(ParsedKey(line_no, card_no, secret, expires_at))
                continue
            reason = _("与第 %(line)d 行重复") % {"line": earlier}
        rejected.append((line_no, reason))
    result.total_lines = total_lines
    return result
