"""clean_text: what user text keeps and loses, on its fast path and its slow one."""

from __future__ import annotations

import pytest

from bridge.ids import clean_text


@pytest.mark.parametrize(
    ("value", "multiline", "expected"),
    [
        ("plain words, émoji 👍 and 中文", True, "plain words, émoji 👍 and 中文"),
        ("two\nlines\tand a tab", True, "two\nlines\tand a tab"),
        ("two\nlines\tand a tab", False, "twolinesand a tab"),
        ("bell\x07 nul\x00 esc\x1b[31m", True, "bell nul esc[31m"),
        ("zero\u200bwidth and bidi\u202e", True, "zerowidth and bidi"),
        ("line\u2028separator", True, "lineseparator"),
        ("\r\n windows", True, "\n windows"),
    ],
)
def test_control_and_format_characters_go(value: str, multiline: bool, expected: str) -> None:
    assert clean_text(value, limit=1000, multiline=multiline) == expected


def test_the_limit_counts_what_is_kept() -> None:
    assert clean_text("abcdef", limit=3) == "abc"
    assert clean_text("\x00\x00abcdef", limit=3) == "abc"
