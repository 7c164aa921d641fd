from datetime import datetime

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from catalog.importing import ImportFileError, decode_import_file, parse_card_key_lines

LIMIT = 1024 * 1024


def test_secret_only_lines_become_keys_and_blank_lines_are_ignored():
    result = parse_card_key_lines("AAAA-1111\n\n  BBBB-2222  \n")

    assert [(key.line_no, key.card_no, key.secret) for key in result.keys] == [(1, "", "AAAA-1111"), (3, "", "BBBB-2222")]
    assert result.rejected == []


def test_card_number_and_secret_separated_by_whitespace():
    result = parse_card_key_lines("NO001  PASS001\nNO002\tPASS002", input_format="card_no_secret")

    assert [(key.card_no, key.secret) for key in result.keys] == [("NO001", "PASS001"), ("NO002", "PASS002")]


def test_csv_lines_with_an_expiry_date():
    result = parse_card_key_lines("NO001,PASS001,2099-12-31\nNO002,PASS002", separator=",")

    first, second = result.keys
    assert first.expires_at == timezone.make_aware(datetime(2099, 12, 31))
    assert second.expires_at is None


@pytest.mark.parametrize("separator,line", [("----", "NO1----P1"), ("|", "NO1|P1"), ("tab", "NO1\tP1"), (";", "NO1;P1")])
def test_every_supported_separator(separator, line):
    assert [(key.card_no, key.secret) for key in parse_card_key_lines(line, separator=separator).keys] == [("NO1", "P1")]


def test_auto_detects_the_format_from_the_first_line():
    assert parse_card_key_lines("NO1----P1\nNO2----P2").keys[1].secret == "P2"
    assert parse_card_key_lines("NO1 P1").keys[0].card_no == "NO1"


def test_every_bad_line_is_reported_with_its_number_and_reason():
    text = "\n".join(
        [
            "NO1,P1",
            "NO2",  # too few fields
            "NO3,P3,2099-01-01,extra",  # too many
            "NO4,P4,next tuesday",  # bad date
            "NO5,P5,2000-01-01",  # expired
            "NO6,",  # empty secret
            "NO7,P\x07",  # control character
            "NO1,P1",  # duplicate of line 1
            "NO8," + "x" * 600,  # too long
        ]
    )

    result = parse_card_key_lines(text, separator=",")

    reasons = dict(result.rejected)
    assert [key.line_no for key in result.keys] == [1]
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "实际 1 段" in reasons[2]
    assert "实际 4 段" in reasons[3]
    assert "next tuesday" in reasons[4]
    assert "已过" in reasons[5]
    assert reasons[6] == "卡密为空"
    assert "控制字符" in reasons[7]
    assert reasons[8] == "与第 1 行重复"
    assert "过长" in reasons[9]
    assert result.total_lines == 9


def test_same_secret_under_different_card_numbers_is_not_a_duplicate():
    result = parse_card_key_lines("A 123456\nB 123456", input_format="card_no_secret")

    assert len(result.keys) == 2


def test_unknown_format_or_separator_is_refused():
    with pytest.raises(ValueError, match="未知的导入格式"):
        parse_card_key_lines("x", input_format="xml")
    with pytest.raises(ValueError, match="不支持的分隔符"):
        parse_card_key_lines("x", separator="#")


def test_files_in_utf8_with_bom_and_gb18030_are_read():
    assert decode_import_file("\ufeff卡号1,密码1".encode("utf-8"), filename="keys.txt", max_bytes=LIMIT) == "卡号1,密码1"
    assert decode_import_file("卡号1,密码1".encode("gb18030"), filename="keys.CSV", max_bytes=LIMIT) == "卡号1,密码1"


@pytest.mark.parametrize(
    "raw,filename,message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "keys.txt", "二进制"),
        (b"ok", "keys.xlsx", ".txt"),
        (b"x" * (LIMIT + 1), "keys.txt", "文件过大"),
        (b"\xff\xfe\xfa\xfb\xfc", "keys.txt", "编码"),
    ],
)
def test_unreadable_files_get_a_clear_error(raw, filename, message):
    with pytest.raises(ImportFileError, match=message):
        decode_import_file(raw, filename=filename, max_bytes=LIMIT)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=40))
def test_every_non_blank_line_is_either_a_key_or_rejected_exactly_once(lines):
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines)

    result = parse_card_key_lines(text, input_format="secret")

    seen = [key.line_no for key in result.keys] + [line_no for line_no, _ in result.rejected]
    assert len(seen) == len(set(seen)) == result.total_lines
    assert len({key.identity for key in result.keys}) == len(result.keys)
