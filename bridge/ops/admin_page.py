"""The status page's HTML: a small template filled with escaped values (no JavaScript)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Any

from ..appservice.gap_store import TxnGap
from .dead_letter_store import DeadLetter
from .status_store import BridgeState

_TEMPLATE = Template(resources.files(__package__).joinpath("admin.html").read_text("utf-8"))
_PREVIEW_CHARS = 160
_REASON_CHARS = 240


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def age(seconds: float) -> str:
    """A short human duration: 42 s, 3 min, 5 h, 2 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    ago = age((now - moment).total_seconds())
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago} ago)"


def _table(headers: list[str], rows: list[str], empty: str, table_id: str) -> str:
    if not rows:
        return f'<p id="{table_id}-empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(rows)}</table>'


def preview(letter: DeadLetter) -> str:
    """What the dead event or action was, in one line."""
    p: Any = letter.payload
    if not isinstance(p, dict):
        return json.dumps(p)[:_PREVIEW_CHARS]
    if letter.source == "outbox":
        inner = p.get("payload") if isinstance(p.get("payload"), dict) else {}
        text = f"{p.get('action')} as {p.get('sender')}"
        body = (inner.get("content") or {}).get("body") if isinstance(inner, dict) else None
    else:
        text = str(p.get("type") or "(no type)")
        if p.get("sender"):
            text += f" from {p.get('sender')}"
        content = p.get("content")
        body = content.get("body") if isinstance(content, dict) else None
    if isinstance(body, str) and body:
        text += f": {body}"
    return text[:_PREVIEW_CHARS]


@dataclass(frozen=True, slots=True)
class PageData:
    bot: str
    homeserver: str
    version: str
    state: BridgeState
    gaps: list[TxnGap]
    letters: list[DeadLetter]
    last_ping_at: datetime | None
    last_ping_seconds: float | None
    rest_by_class: dict[str, float]
    csrf: str
    base: str
    notice: str | None
    refresh: int | None


def _homeserver(d: PageData, now: datetime) -> str:
    last = d.state.last_transaction
    rows = [
        '<tr><th>Last transaction</th><td id="last-txn">'
        + (
            f"{esc(last.txn_id)}, {last.event_count} event(s), {_when(last.received_at, now)}"
            if last
            else "none received yet"
        )
        + "</td></tr>",
        f'<tr><th>Last ping</th><td id="last-ping">{_when(d.last_ping_at, now)}'
        + (
            f", round trip {d.last_ping_seconds * 1000:.0f} ms"
            if d.last_ping_seconds is not None and d.last_ping_at
            else ""
        )
        + "</td></tr>",
    ]
    return f'<table id="homeserver">{"".join(rows)}</table>'


def _queues(state: BridgeState) -> str:
    rows = []
    for name, depth in (
        ("Inbox pending", state.inbox["pending"]),
        ("Inbox retrying", state.inbox["retrying"]),
        ("Outbox pending", state.outbox),
    ):
        key = name.lower().replace(" ", "-")
        rows.append(
            f'<tr><th>{esc(name)}</th><td class="num" id="{key}">{depth.count}</td>'
            f'<td class="num" id="{key}-age">{age(depth.oldest_seconds) if depth.count else "-"}'
            "</td></tr>"
        )
    waiting = sum(state.dead_letters.values())
    rows.append(
        f'<tr><th>Dead letters waiting</th><td class="num" id="dead-letters-waiting">{waiting}'
        "</td><td></td></tr>"
    )
    return _table(["Queue", "Rows", "Oldest"], rows, "", "queues")


def _gaps(gaps: list[TxnGap], now: datetime) -> str:
    rows = [
        f'<tr class="gap-{esc(g.state)}"><td class="num">{g.missing_id}</td>'
        f"<td>{esc(g.after_txn)}</td>"
        f'<td class="{"bad" if g.state in ("given_up", "due", "forced") else ""}">'
        f"{esc(g.state)}</td><td>{_when(g.detected_at, now)}</td>"
        f"<td>{_when(g.forced_at, now) if g.forced_at else '-'}</td></tr>"
        for g in gaps
    ]
    return _table(
        ["Missing id", "Seen after", "State", "Detected", "Forced retry"],
        rows,
        "No transaction was ever skipped.",
        "gaps",
    )


def _letters(d: PageData, now: datetime) -> str:
    rows = []
    for letter in d.letters:
        reason = letter.error.strip().splitlines()[-1] if letter.error.strip() else ""
        if letter.replayed_at is not None:
            status = f"replayed; now {esc(letter.current_state or 'gone')}"
            actions = ""
        else:
            status = "waiting"
            actions = (
                f'<form method="post" action="{d.base}/dead-letters/{letter.id}/replay">'
                f'<input type="hidden" name="csrf" value="{esc(d.csrf)}">'
                f'<button type="submit" class="replay">Replay</button></form> '
            )
        actions += (
            f'<form method="post" action="{d.base}/dead-letters/{letter.id}/drop">'
            f'<input type="hidden" name="csrf" value="{esc(d.csrf)}">'
            f'<button type="submit" class="drop">Drop</button></form>'
        )
        rows.append(
            f'<tr id="dead-letter-{letter.id}"><td class="num">{letter.id}</td>'
            f"<td>{esc(letter.source)}</td><td>{_when(letter.created_at, now)}</td>"
            f"<td><pre>{esc(reason[:_REASON_CHARS])}</pre></td>"
            f"<td><pre>{esc(preview(letter))}</pre></td>"
            f'<td class="status">{status}</td><td>{actions}</td></tr>'
        )
    return _table(
        ["Id", "Source", "When", "Reason", "Event", "Status", ""],
        rows,
        "No dead letters.",
        "dead-letters",
    )


def _rest(by_class: dict[str, float]) -> str:
    total = sum(by_class.values())
    rows = []
    for cls in ("2xx", "4xx", "5xx"):
        n = by_class.get(cls, 0.0)
        share = f"{100 * n / total:.1f} %" if total else "-"
        rows.append(
            f'<tr><th>{cls}</th><td class="num" id="rest-{cls}">{n:.0f}</td>'
            f'<td class="num">{share}</td></tr>'
        )
    return _table(["Status", "Requests", "Share"], rows, "", "rest")


def render(d: PageData) -> str:
    now = datetime.now(UTC)
    refresh = f'<meta http-equiv="refresh" content="{d.refresh}">' if d.refresh is not None else ""
    return _TEMPLATE.substitute(
        refresh=refresh,
        bot=esc(d.bot),
        homeserver=esc(d.homeserver),
        version=esc(d.version),
        now=f"{now:%Y-%m-%d %H:%M:%S} UTC",
        self_link=esc(d.base),
        base=esc(d.base),
        csrf=esc(d.csrf),
        notice=f'<p class="notice" id="notice">{esc(d.notice)}</p>' if d.notice else "",
        homeserver_table=_homeserver(d, now),
        queues_table=_queues(d.state),
        gaps_table=_gaps(d.gaps, now),
        dead_letters_table=_letters(d, now),
        rest_table=_rest(d.rest_by_class),
    )
