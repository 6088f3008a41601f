"""Hostile values shared by the fuzz tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Strings that have broken parsers, databases and sanitisers before.
HOSTILE_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\ufeff",
    "\u202e",
    "\n",
    "\r\n",
    "",
    " ",
    "<script>alert(1)</script>",
    "<a href='javascript:x'>",
    "<font color=red>x</font>",
    "@_pn_x:localhost\n",
    "mxc://x/y",
    "$" * 300,
    "\U0001d54f" * 50,
    "%00",
    "\\u0000",
    "'; DROP TABLE inbox; --",
    "' OR 1=1 --",
    "../../etc/passwd",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "10000-01-01",
    "2024-02-30",
    "1e400",
    "NaN",
    "-1",
    "99999999999999999999",
    "true",
    "null",
    "[]",
    "{}",
    "00000000-0000-0000-0000-000000000000",
    "x" * 70_000,
]
#: Any text, lone surrogates included, or one of the hostile strings.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30), st.sampled_from(HOSTILE_STRINGS)
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)


def json_values(
    leaves: st.SearchStrategy[Any] = SCALARS, keys: st.SearchStrategy[str] = TEXT
) -> st.SearchStrategy[Any]:
    """JSON-serialisable values: ``leaves`` in lists and objects keyed by ``keys``."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=12,
    )
