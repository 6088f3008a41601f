"""Setting scalars in a YAML config file's text, keeping every comment and line around them.

``bridge generate-registration`` writes what it generates (tokens, the signing key's path) back
into the operator's config this way, so the file stays the commented document they edited.
Only block mappings are understood (what ``config.example.yaml`` uses); a flow mapping on the
way (``api: {}``) is refused rather than rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import yaml

from .config import ConfigError

_KEY_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<key>[A-Za-z_][\w.\-]*):(?P<rest>.*)$")
_COMMENT_RE = re.compile(r"\s+#.*$")
_STEP = "  "


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_end(lines: list[str], index: int) -> int:
    """The end (exclusive) of the block of the key on line ``index``: the next line of content
    indented no deeper than that key, trailing blank and comment lines excluded."""
    own = _indent(lines[index])
    last = index
    for i in range(index + 1, len(lines)):
        if not _is_content(lines[i]):
            continue
        if _indent(lines[i]) <= own:
            break
        last = i
    return last + 1


def _children(lines: list[str], start: int, end: int) -> list[tuple[int, str, str, str]]:
    """Direct children of a block: (line index, indent, key, rest of the line)."""
    found: list[tuple[int, str, str, str]] = []
    depth: str | None = None
    for i in range(start, end):
        if not _is_content(lines[i]):
            continue
        match = _KEY_RE.match(lines[i].rstrip("\n"))
        if depth is None:
            depth = match.group("indent") if match else None
            if depth is None:
                break
        if match and match.group("indent") == depth:
            found.append((i, depth, match.group("key"), match.group("rest")))
    return found


def scalar(value: str | int | bool) -> str:
    """``value`` as a YAML plain or quoted scalar, on one line."""
    text = str(yaml.safe_dump(value, width=1 << 20, default_flow_style=True))
    return text.removesuffix("\n...\n").strip()


def _value_only(rest: str) -> str:
    return _COMMENT_RE.sub("", rest).strip() if not rest.strip().startswith(("'", '"')) else rest


def _render(indent: str, key: str, value: str | int | bool, rest: str, ending: str) -> str:
    comment = ""
    if not rest.strip().startswith(("'", '"')):
        match = _COMMENT_RE.search(rest)
        if match:
            comment = match.group(0)
    return f"{indent}{key}: {scalar(value)}{comment}{ending}"


def set_scalars(
    text: str, section: Sequence[str], values: Mapping[str, str | int | bool]
) -> str:
    """Set ``<section>.<key>`` scalars in YAML text; sections and keys missing are added.

    A key already there keeps its line's comment; a new key goes first in its section; a new
    section goes at the end of its parent (the file's end for a top-level one).
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start, end, indent = 0, len(lines), ""
    for depth, name in enumerate(section):
        children = _children(lines, start, end)
        here = next((c for c in children if c[2] == name), None)
        if here is None:
            child_indent = children[0][1] if children else (indent + _STEP if depth else "")
            lines[end:end] = _new_block(child_indent, section[depth:], values)
            return "".join(lines)
        index, indent, _, rest = here
        if _value_only(rest) not in ("", "null", "~"):
            raise ConfigError(".".join(section[: depth + 1]), "must be a block mapping to edit")
        if _value_only(rest):  # an explicit null: the section becomes a block
            comment = _COMMENT_RE.search(rest)
            lines[index] = f"{indent}{name}:{comment.group(0) if comment else ''}\n"
        start, end = index + 1, _block_end(lines, index)
    keys = {c[2]: c for c in _children(lines, start, end)}
    child_indent = next(iter(keys.values()))[1] if keys else indent + _STEP
    added: list[str] = []
    for key, value in values.items():
        if key in keys:
            index, _, _, rest = keys[key]
            ending = "\n" if lines[index].endswith("\n") else ""
            lines[index] = _render(child_indent, key, value, rest, ending)
        else:
            added.append(f"{child_indent}{key}: {scalar(value)}\n")
    lines[start:start] = added
    return "".join(lines)


def _new_block(
    indent: str, path: Sequence[str], values: Mapping[str, str | int | bool]
) -> list[str]:
    block: list[str] = []
    for name in path:
        block.append(f"{indent}{name}:\n")
        indent += _STEP
    block.extend(f"{indent}{key}: {scalar(value)}\n" for key, value in values.items())
    return block
