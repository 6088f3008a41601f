"""Allow-list sanitising of Matrix ``formatted_body`` HTML (the homeserver passes it untouched)."""

from __future__ import annotations

import re

import nh3

# The tags and attributes the Matrix client-server spec allows in m.room.message HTML.
_TAGS = {
    "font",
    "del",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "p",
    "a",
    "ul",
    "ol",
    "sup",
    "sub",
    "li",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "s",
    "code",
    "hr",
    "br",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
    "pre",
    "span",
    "img",
    "details",
    "summary",
}
_ATTRIBUTES = {
    "font": {"data-mx-bg-color", "data-mx-color", "color"},
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler"},
    "a": {"href", "name", "target"},
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
}
_SCHEMES = {"https", "http", "ftp", "mailto", "magnet", "mxc"}
MAX_HTML = 64 * 1024
#: Colour attributes: the spec allows only ``#rrggbb`` (a named colour or CSS could smuggle
#: anything a client's renderer chooses to interpret).
_COLOURS = frozenset({"data-mx-color", "data-mx-bg-color", "color"})
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


def _filter(element: str, attribute: str, value: str) -> str | None:
    if attribute in _COLOURS:
        return value if _HEX_COLOUR.fullmatch(value) else None
    if element == "img" and attribute == "src" and not value.startswith("mxc://"):
        return None  # images only from the homeserver's media repository
    if element == "code" and attribute == "class" and not value.startswith("language-"):
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"mx-reply", "script", "style"},
    attributes=_ATTRIBUTES,
    attribute_filter=_filter,
    url_schemes=_SCHEMES,
    link_rel="noopener noreferrer",
)


def sanitize_html(html: str) -> str:
    """Keep only the spec's tags, attributes and URL schemes; drop reply fallbacks."""
    return _CLEANER.clean(html[:MAX_HTML])
