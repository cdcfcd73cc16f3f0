from __future__ import annotations

import pytest

from engine.source.lsn import INVALID_LSN, MAX_LSN, format_lsn, parse_lsn


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0x16_B374D848, "16/B374D848"),
        (0, "0/0"),
        (0x1_0000_0000, "1/0"),
        (0x3000028, "0/3000028"),
        (MAX_LSN, "FFFFFFFF/FFFFFFFF"),
    ],
)
def test_format_and_parse(value: int, text: str) -> None:
    assert format_lsn(value) == text
    assert parse_lsn(text) == value


def test_invalid_lsn_is_zero() -> None:
    assert format_lsn(INVALID_LSN) == "0/0"


@pytest.mark.parametrize("text", ["16/b374d848", "016/B374D848", "00000016/B374D848"])
def test_parse_accepts_lowercase_and_leading_zeros(text: str) -> None:
    assert parse_lsn(text) == 0x16_B374D848


@pytest.mark.parametrize(
    "text",
    ["", "16", "16/", "/B374D848", "16/B374D848/1", "0x16/1", "16/0x1", " 16/1", "16/1 ", "16/1\n", "1_6/1",
     "+16/1", "-1/0", "G/0", "123456789/0", "0/123456789", "16 / 1", "١/٠"],
)  # fmt: skip
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="malformed LSN") as info:
        parse_lsn(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [-1, MAX_LSN + 1])
def test_format_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="LSN out of range"):
        format_lsn(value)
