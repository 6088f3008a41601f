"""Colour attributes in formatted messages: only ``#rrggbb`` survives (Matrix spec)."""

from __future__ import annotations

import pytest

from bridge.messaging.html import sanitize_html

COLOUR_ATTRIBUTES = [
    ("font", "data-mx-color"),
    ("font", "data-mx-bg-color"),
    ("font", "color"),
    ("span", "data-mx-color"),
    ("span", "data-mx-bg-color"),
]


@pytest.mark.parametrize("value", ["#ff0000", "#00FF7f", "#123abc"])
@pytest.mark.parametrize(("tag", "attribute"), COLOUR_ATTRIBUTES)
def test_hex_colours_are_kept(tag: str, attribute: str, value: str) -> None:
    html = f'<{tag} {attribute}="{value}">hi</{tag}>'
    assert sanitize_html(html) == html


@pytest.mark.parametrize(
    "value",
    [
        "red",
        "#fff",
        "#ff00000",
        "#gg0000",
        "rgb(1,2,3)",
        "#ff0000;background:url(https://x)",
        "#ff0000 ",
        "#ff0000\n",
        "expression(alert(1))",
        "",
    ],
)
@pytest.mark.parametrize(("tag", "attribute"), COLOUR_ATTRIBUTES)
def test_other_colour_values_are_dropped(tag: str, attribute: str, value: str) -> None:
    cleaned = sanitize_html(f'<{tag} {attribute}="{value}">hi</{tag}>')
    assert cleaned == f"<{tag}>hi</{tag}>"


def test_other_attributes_are_unaffected() -> None:
    html = '<span data-mx-spoiler="why">x</span><a href="https://example.org">y</a>'
    assert "data-mx-spoiler" in sanitize_html(html)
    assert 'href="https://example.org"' in sanitize_html(html)
