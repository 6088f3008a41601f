"""Generated transactions against the real intake and processing on a real Postgres.

Valid events, malformed events and hostile JSON (NaN, numbers past a double, deep nesting,
U+0000, lone surrogates, byte-order marks, broken UTF-8) go through the real application:
intake, inbox workers, handlers and outbox (to a fake homeserver). Whatever comes, the bridge
answers 200 for a JSON body and 400 for what is not JSON, never 5xx; each event of an
acknowledged transaction ends processed, ignored or dead-lettered, none is stored twice (a
resend changes nothing), and the database is consistent afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from bridge.app import CONTEXT, DATABASE, init_app
from bridge.appservice.transaction import parse_transaction
from bridge.config import Config, parse_config
from tests.conftest import AS_TOKEN, HS_TOKEN, config_data
from tests.fake_homeserver import FakeHomeserver, serve_fake_homeserver
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.strategies import TEXT, json_values

AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}
TXN = "/_matrix/app/v1/transactions"
ALICE = "@alice:localhost"
DM = "!fuzzdm:localhost"
_ids = itertools.count()
#: How long processing may take to settle after a transaction before it counts as a hang.
SETTLE_SECONDS = 30.0

# --- strategies ---------------------------------------------------------------------------------

JSON_VALUES = json_values()
#: Number literals as text: past a double, underflowing, huge integers.
HOSTILE_NUMBERS = st.sampled_from(
    ["1e400", "-1e400", "1E+99999", "1e200000", "1e-400", "1" * 400, "-" + "9" * 5000, "0.0e-999"]
)
TIMESTAMPS = st.one_of(
    st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000),
    st.sampled_from([10**15, 10**300, -1, 0, 2**63, 253_402_300_799_999]),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
MARK = "__fuzz_raw_number__"


@dataclass
class Item:
    """One element of a transaction's events (or ephemeral) list, as JSON text."""

    text: str
    event_id: str | None = None  # our unique id, when the element is an object carrying it
    normal_message: bool = False  # a plain message that must become a message row


@st.composite
def messages(draw: st.DrawFn) -> Item:
    event_id = f"$fz{next(_ids)}-{uuid.uuid4().hex[:8]}"
    normal = draw(st.booleans())
    content: dict[str, Any] = {"msgtype": "m.text", "body": f"hello {event_id}"}
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": "m.room.message",
        "room_id": DM,
        "sender": ALICE,
        "origin_server_ts": 1_700_000_000_000 + next(_ids),
        "content": content,
    }
    if not normal:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            content["body"] = draw(TEXT)
        elif choice == 1:
            content[draw(TEXT)] = draw(JSON_VALUES)
        elif choice == 2:
            event["origin_server_ts"] = draw(TIMESTAMPS)
        elif choice == 3:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = draw(TEXT)
        elif choice == 4:
            content["x"] = MARK  # replaced below by a hostile number literal
        else:
            depth = draw(st.integers(1, 200))
            content["deep"] = json.loads("[" * depth + "]" * depth)
    text = json.dumps(event)
    if MARK in text:
        text = text.replace(json.dumps(MARK), draw(HOSTILE_NUMBERS))
    return Item(text, event_id, normal_message=normal)


@st.composite
def malformed(draw: st.DrawFn) -> Item:
    """An element that is not a well-formed event: any JSON value, or an event with a field
    broken."""
    if draw(st.booleans()):
        return Item(json.dumps(draw(JSON_VALUES)))
    event_id = f"$fz{next(_ids)}-{uuid.uuid4().hex[:8]}"
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": "m.room.message",
        "room_id": DM,
        "sender": ALICE,
        "content": {"body": "x"},
    }
    broken = draw(st.sampled_from(["type", "room_id", "sender", "content", "state_key"]))
    event[broken] = draw(JSON_VALUES)
    return Item(json.dumps(event), event_id)


@st.composite
def ephemeral(draw: st.DrawFn) -> Item:
    content = {"$someevent": {"m.read": {ALICE: {"ts": draw(TIMESTAMPS)}}}}
    if draw(st.booleans()):
        content = draw(JSON_VALUES)
    return Item(json.dumps({"type": "m.receipt", "room_id": DM, "content": content}))


@dataclass
class Transaction:
    txn_id: str
    body: bytes
    pdus: list[Item]
    edus: list[Item]
    is_json: bool = True
    resend_as: str | None = None  # a second transaction id carrying the same body


def _corrupt(body: bytes, how: str) -> bytes:
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    if how == "nan":
        return body.replace(b'"events":[', b'"events":[NaN,', 1)
    if how == "utf16":
        return body.decode().encode("utf-16")
    if how == "bad-utf8":
        return body[:-1] + b"\xff}"
    if how == "truncated":
        return body[: len(body) // 2]
    return b'{"events":[' + b"[" * 50_000 + b"]" * 50_000 + b"]}"  # past any parser


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    pdus = draw(st.lists(st.one_of(messages(), malformed()), max_size=8))
    edus = draw(st.lists(ephemeral(), max_size=3))
    body = '{"events":[' + ",".join(i.text for i in pdus) + "]"
    if edus:
        body += ',"ephemeral":[' + ",".join(i.text for i in edus) + "]"
    if draw(st.booleans()):
        body += ',"x.unknown":' + draw(
            st.one_of(HOSTILE_NUMBERS, st.just(json.dumps(draw(JSON_VALUES))))
        )
    raw = (body + "}").encode()
    txn_id = f"fz{next(_ids)}"
    corruption = draw(
        st.one_of(
            st.none(), st.sampled_from(["bom", "nan", "utf16", "bad-utf8", "truncated", "deep"])
        )
    )
    if corruption is not None:
        return Transaction(txn_id, _corrupt(raw, corruption), pdus, edus, is_json=False)
    resend = f"fz{next(_ids)}" if draw(st.booleans()) else None
    return Transaction(txn_id, raw, pdus, edus, resend_as=resend)


# --- the bed: the whole app against a fake homeserver, with a direct chat set up ----------------


@dataclass
class Bed:
    client: TestClient[Any, Any]
    conn: asyncpg.Connection
    hs: FakeHomeserver


@pytest.fixture
async def bed(
    dsn: str, aiohttp_client: Any, aiohttp_server: Any, conn: asyncpg.Connection
) -> AsyncIterator[Bed]:
    hs = await serve_fake_homeserver(aiohttp_server, AS_TOKEN)
    data = config_data()
    data["homeserver"]["address"] = hs.url
    data["appservice"]["inbox"] = {"workers": 2, "retry_delay": 0.01, "max_attempts": 3}
    data["appservice"]["outbox"] = {"retry_delay": 0.01, "max_retry_delay": 0.05}
    config: Config = parse_config(data)
    app = await init_app(config, dsn)
    client = await aiohttp_client(app)
    ctx = app[CONTEXT]
    async with app[DATABASE].transaction() as tx:
        bob = (await ctx.users.create(tx, "Bob")).id
        alice = (await ctx.users.for_matrix_user(tx, ALICE)).id
        request, _ = await ctx.networking.send_request(tx, alice, bob)
        await ctx.networking.accept(tx, receiver=bob, request_id=request.id)
    # The direct chat exists on the homeserver: Alice made it and invited Bob's ghost, and the
    # bot, which tells the room about messages the network refused.
    room_id = hs.add_room([ALICE, hs.bot], invited=[ctx.ids.ghost(bob)])
    hs.rooms[DM] = hs.rooms.pop(room_id)
    hs.rooms[DM].room_id = DM
    invite = {
        "event_id": "$fz-invite",
        "type": "m.room.member",
        "room_id": DM,
        "sender": ALICE,
        "state_key": ctx.ids.ghost(bob),
        "content": {"membership": "invite", "is_direct": True},
    }
    resp = await client.put(f"{TXN}/fz-setup", json={"events": [invite]}, headers=AUTH)
    assert resp.status == 200
    b = Bed(client, conn, hs)
    await settled(b)
    assert await conn.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", DM) == 1
    yield b
    assert hs.violations == []


async def settled(bed: Bed) -> None:
    """Wait (bounded) until the inbox has nothing pending and its lanes are released."""
    async with asyncio.timeout(SETTLE_SECONDS):
        while True:
            pending = await bed.conn.fetchval(
                "SELECT (SELECT count(*) FROM inbox WHERE state = 'pending')"
                " + (SELECT count(*) FROM inbox_lane)"
            )
            if pending == 0:
                return
            await asyncio.sleep(0.02)


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM inbox) AS i,"
        " (SELECT count(*) FROM dead_letter WHERE source IN ('intake', 'inbox')) AS d,"
        " (SELECT count(*) FROM message) AS m"
    )
    return row["i"], row["d"], row["m"]


async def check_consistent(bed: Bed) -> None:
    conn = bed.conn
    # Every inbox event finished; each dead one has its dead letter.
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE state = 'pending'") == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM inbox i WHERE i.state = 'dead' AND NOT EXISTS ("
            " SELECT 1 FROM dead_letter d WHERE d.dedupe_key = 'inbox:' || i.event_id)"
        )
        == 0
    )
    # A message stored from Matrix comes from one processed event, once.
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT event_id FROM message WHERE event_id IS NOT NULL"
            " GROUP BY event_id HAVING count(*) > 1) twice"
        )
        == 0
    )
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM message m WHERE m.origin = 'matrix' AND NOT EXISTS ("
            " SELECT 1 FROM inbox i WHERE i.event_id = m.event_id AND i.state = 'processed')"
        )
        == 0
    )
    # Matrix users' events queue nothing that fails on the homeserver.
    dead = await conn.fetch(
        "SELECT action, payload::text, last_error FROM outbox WHERE state = 'dead'"
    )
    assert dead == [], [dict(r) for r in dead]


async def check_nothing_lost(bed: Bed, txn: Transaction) -> None:
    conn = bed.conn
    for item in txn.pdus:
        if item.event_id is None:
            continue
        inbox = await conn.fetchval(
            "SELECT count(*) FROM inbox WHERE event_id = $1 AND state <> 'pending'", item.event_id
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM dead_letter WHERE event_id = $1", item.event_id
        )
        assert inbox + dead >= 1, f"{item.event_id} was acknowledged and lost"
        assert dead <= 1 and inbox <= 1
        if item.normal_message:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM message WHERE event_id = $1", item.event_id
                )
                == 1
            ), f"{item.event_id} was not bridged"
    # Every element, ours or any JSON value, is stored: as an inbox event or a dead letter.
    parsed = parse_transaction(txn.txn_id, txn.body)
    stored = await conn.fetchval(
        "SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])",
        [e.event_id for e in parsed.events],
    )
    assert stored == len({e.event_id for e in parsed.events})
    kept = await conn.fetchval(
        "SELECT count(*) FROM dead_letter WHERE dedupe_key = ANY($1::text[])",
        [r.dedupe_key for r in parsed.rejected],
    )
    assert kept == len({r.dedupe_key for r in parsed.rejected})
    assert len(parsed.events) + len(parsed.rejected) == len(txn.pdus) + len(txn.edus)


@fuzz_settings(ci_examples=250)
@given(txn=transactions())
async def test_generated_transactions_are_never_500_and_never_lost(
    bed: Bed, txn: Transaction
) -> None:
    before = await counts(bed.conn)
    resp = await bed.client.put(f"{TXN}/{txn.txn_id}", data=txn.body, headers=AUTH)
    text = await resp.text()
    assert resp.status < 500, text
    if not txn.is_json:
        assert resp.status == 400, text
        assert json.loads(text)["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")
        assert await counts(bed.conn) == before
        assert (
            await bed.conn.fetchval(
                "SELECT count(*) FROM appservice_txn WHERE txn_id = $1", txn.txn_id
            )
            == 0
        )
        return
    assert resp.status == 200, text
    await settled(bed)
    after = await counts(bed.conn)
    # The homeserver resends (same id, or a reused id after its restart): nothing new.
    for again in filter(None, (txn.txn_id, txn.resend_as)):
        resp = await bed.client.put(f"{TXN}/{again}", data=txn.body, headers=AUTH)
        assert resp.status == 200, await resp.text()
    await settled(bed)
    now = await counts(bed.conn)
    if txn.resend_as is None:
        assert now == after
    else:  # under a new id the receipts count again (EDUs have no id); PDUs and messages not
        assert now[2] == after[2]
        assert 0 <= now[0] - after[0] <= len(txn.edus)
        assert 0 <= now[1] - after[1] <= len(txn.edus)
    await check_nothing_lost(bed, txn)
    await check_consistent(bed)
