"""The end-to-end test bed's parts: managed daemons, the bridge's DB, scenario helpers.

The fixtures that put them together live in ``conftest.py``; tests import from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from mautrix.api import Method
from mautrix.api import Path as ApiPath
from mautrix.appservice import IntentAPI
from mautrix.client import ClientAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError, MNotFound
from mautrix.types import (
    EventType,
    FilterID,
    MatrixUserIdentifier,
    MemberStateEventContent,
    MessageType,
    RoomAlias,
    RoomID,
    TextMessageEventContent,
    UserID,
    UserIdentifier,
)

from bridge.local.processes import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    ManagedProcess,
    child_env,
    free_port,
    http_status,
    tail,
    wait_until,
)
from bridge.local.synapse import RegistrationError
from bridge.local.synapse import SynapseProcess as LocalSynapse
from bridge.local.synapse import register_user as register_with_secret

__all__ = ["ManagedProcess", "child_env", "free_port", "http_status", "tail", "wait_until"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "localhost"
APPSERVICE_ID = "pn-e2e"
BOT_LOCALPART = "_pn_bot"
BOT_MXID = UserID(f"@{BOT_LOCALPART}:{SERVER_NAME}")
ALICE = "alice"
ALICE_PASSWORD = "alice-password"

#: The state a processed m.room.message ends in, in a room of alice's that is neither a portal
#: nor a management room (see ``portal_room``): the bridge keeps it and marks it ignored.
MESSAGE_DONE_STATE = "ignored"

LOG_TAIL_LINES = 120


class BridgeProcess(ManagedProcess):
    """The bridge subprocess, with what tests need to know about it."""

    def __init__(self, *, config_path: Path, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.config = config

    @property
    def as_token(self) -> str:
        return str(self.config["appservice"]["as_token"])

    @property
    def hs_token(self) -> str:
        return str(self.config["appservice"]["hs_token"])

    @property
    def url(self) -> str:
        return str(self.config["appservice"]["address"])

    @property
    def data_dir(self) -> Path:
        return self.config_path.parent / str(self.config["appservice"]["embedded_data_dir"])

    def dsn(self) -> str:
        """DSN of the bridge's embedded PostgreSQL, read from its ``postmaster.pid``.

        Lines 4 and 5 of that file are the port and the unix socket directory.
        """
        lines = (self.data_dir / "postmaster.pid").read_text().split("\n")
        port, socket_dir = lines[3].strip(), lines[4].strip()
        return f"postgresql://postgres@/bridge?host={socket_dir}&port={port}"

    def stop_orphaned_postgres(self) -> None:
        """Stop a postmaster left behind by a SIGKILLed bridge that was never restarted."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        from bridge.db.embedded import EmbeddedPostgres

        leftover = EmbeddedPostgres(self.data_dir)
        leftover.start()  # adopts the running postmaster
        leftover.stop()


class SynapseProcess(LocalSynapse):
    """The session's Synapse, with read access to what it owes the bridge."""

    # Synapse's own view of what it owes the bridge, read from its SQLite database (read-only;
    # it may be running, so wait out its write locks).

    def db(self) -> contextlib.closing[sqlite3.Connection]:
        uri = f"file:{self.db_path}?mode=ro"
        return contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30))

    def appservice_down(self) -> bool:
        """Whether Synapse has marked the bridge down (and is retrying with back-off)."""
        with self.db() as db:
            row = db.execute(
                "SELECT state FROM application_services_state WHERE as_id = ?", (APPSERVICE_ID,)
            ).fetchone()
        return row is not None and row[0] == "down"

    def unsent_transactions(self) -> dict[int, list[str]]:
        """Transactions Synapse created for the bridge and has not completed: id -> event ids."""
        with self.db() as db:
            rows = db.execute(
                "SELECT txn_id, event_ids FROM application_services_txns WHERE as_id = ?",
                (APPSERVICE_ID,),
            ).fetchall()
        return {int(txn_id): list(json.loads(event_ids)) for txn_id, event_ids in rows}

    def appservice_position(self) -> int:
        """The stream position up to which Synapse has handed events to its AS scheduler."""
        with self.db() as db:
            (position,) = db.execute(
                "SELECT stream_ordering FROM appservice_stream_position"
            ).fetchone()
        return int(position)

    def stream_orderings(self, event_ids: list[str]) -> dict[str, int]:
        with self.db() as db:
            marks = ",".join("?" * len(event_ids))
            rows = db.execute(
                f"SELECT event_id, stream_ordering FROM events WHERE event_id IN ({marks})",
                event_ids,
            ).fetchall()
        return {event_id: int(ordering) for event_id, ordering in rows}


#: Every managed process of the session, for the failure report hook.
PROCESSES: list[ManagedProcess] = []


class Inbox:
    """Read access to the bridge's database (its embedded PostgreSQL)."""

    def __init__(self, bridge: BridgeProcess) -> None:
        self._bridge = bridge

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self._bridge.dsn(), timeout=10)
        try:
            yield conn
        finally:
            await conn.close()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connect() as conn:
            return list(await conn.fetch(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connect() as conn:
            return await conn.fetchval(query, *args)

    async def rows_for(self, event_ids: list[str]) -> list[asyncpg.Record]:
        return await self.fetch(
            "SELECT * FROM inbox WHERE event_id = ANY($1::text[]) ORDER BY id", event_ids
        )

    async def wait_processed(self, event_ids: list[str], within: float) -> list[asyncpg.Record]:
        """Poll until every one of ``event_ids`` is in the inbox and none is pending."""
        wanted = set(event_ids)
        seen: dict[str, int] = {}

        async def done() -> list[asyncpg.Record] | None:
            rows = await self.rows_for(event_ids)
            seen.clear()
            for row in rows:
                seen[row["state"]] = seen.get(row["state"], 0) + 1
            have = {r["event_id"] for r in rows}
            if have >= wanted and all(r["state"] != "pending" for r in rows):
                return rows
            return None

        return await wait_until(
            done,
            within=within,
            what=lambda: (
                f"{len(wanted)} events processed in the bridge's inbox "
                f"(in the inbox by state: {seen or 'none'})"
            ),
        )


# ---------------------------------------------------------------------------- scenario helpers


async def portal_room(alice: ClientAPI, bot: IntentAPI, name: str) -> RoomID:
    """A private room of alice's that the bridge bot has joined, so Synapse pushes its events.

    Not a portal in the bridge's sense (no conversation behind it): its messages are kept in
    the inbox and marked ignored. The bridge answers the invite with a join of its own through
    its outbox; the test joins the bot at once through the application-service API, so that it
    is in the room before the first message (a second join is a no-op).
    """
    room_id = await alice.create_room(name=name, invitees=[BOT_MXID])
    await bot.join_room(room_id, max_retries=0)
    return room_id


class MessageStream:
    """Sends ``count`` numbered text messages into a room, one after the other.

    ``sent`` holds the event ids the homeserver returned, in order. ``reached(n)`` is set once
    ``n`` messages are sent (or the stream ended, so a waiter never hangs). With
    ``homeserver`` given, the stream rides out a homeserver restart: a send that fails on the
    connection or with a 5xx is repeated with the same transaction id (idempotent) once the
    homeserver answers ``/health`` again.
    """

    def __init__(
        self,
        client: ClientAPI,
        room_id: str,
        count: int,
        *,
        homeserver: SynapseProcess | None = None,
        outage_limit: float = START_TIMEOUT + STOP_TIMEOUT,
    ) -> None:
        self.client = client
        self.room_id = RoomID(room_id)
        self.count = count
        self.homeserver = homeserver
        self.outage_limit = outage_limit
        self.sent: list[str] = []
        self.retried = 0
        self._label = f"e2e-{secrets.token_hex(6)}"
        self._milestones: dict[int, asyncio.Event] = {}

    @staticmethod
    def body(n: int) -> str:
        return f"stream message {n}"

    def reached(self, n: int) -> asyncio.Event:
        event = self._milestones.setdefault(n, asyncio.Event())
        if len(self.sent) >= n:
            event.set()
        return event

    async def run(self) -> list[str]:
        try:
            for n in range(self.count):
                self.sent.append(await self._send(n))
                milestone = self._milestones.get(len(self.sent))
                if milestone is not None:
                    milestone.set()
        finally:
            for event in self._milestones.values():
                event.set()
        return self.sent

    async def _send(self, n: int) -> str:
        content = TextMessageEventContent(msgtype=MessageType.TEXT, body=self.body(n))
        txn_id = f"{self._label}-{n}"
        give_up = time.monotonic() + self.outage_limit
        while True:
            try:
                event_id = await self.client.send_message_event(
                    self.room_id, EventType.ROOM_MESSAGE, content, txn_id=txn_id
                )
                return str(event_id)
            except (MatrixConnectionError, MatrixRequestError) as exc:
                transient = isinstance(exc, MatrixConnectionError) or (
                    isinstance(exc, MatrixRequestError) and exc.http_status >= 500
                )
                if self.homeserver is None or not transient or time.monotonic() > give_up:
                    raise
                self.retried += 1
                await self._homeserver_back(give_up)

    async def _homeserver_back(self, give_up: float) -> None:
        assert self.homeserver is not None
        url = self.homeserver.ready_url

        async def healthy() -> bool:
            return await asyncio.to_thread(http_status, url, 1.0) == 200

        await wait_until(
            healthy, within=max(give_up - time.monotonic(), 0), what=f"{url} to answer again"
        )


async def homeserver_ping(bot: IntentAPI, txn_id: str) -> dict[str, Any]:
    """``POST /_matrix/client/v1/appservice/{id}/ping``: the homeserver pings the bridge.

    Synapse answers 200 ``{"duration_ms": ...}`` only when the bridge answered its ping with
    2xx, and a successful ping makes it retry at once the transactions it holds for a bridge
    it had marked down (instead of waiting out its back-off).
    """
    resp = await bot.api.request(
        Method.POST, ApiPath.v1.appservice[APPSERVICE_ID].ping, content={"transaction_id": txn_id}
    )
    assert isinstance(resp, dict)
    return resp


async def nudge_recovery(bot: IntentAPI, txn_id: str) -> None:
    """Ping the bridge through Synapse so that it resends what it holds for it right away.

    Synapse 1.163 has a race there: when its recoverer's scheduled retry is already running,
    the ping's ``force_retry`` cancels a call that has fired and the ping answers 502
    ``AlreadyCalled`` although the bridge answered 200; and when the bridge's own start-up ping
    already cancelled that retry, a second cancel answers ``AlreadyCancelled``. A retry is under
    way in both cases, so those answers are ignored; any other failure is raised.
    """
    try:
        await homeserver_ping(bot, txn_id)
    except MatrixRequestError as exc:
        if "AlreadyCalled" not in str(exc) and "AlreadyCancelled" not in str(exc):
            raise


#: How long a shortfall must stay unchanged before it counts as final (see wait_delivered).
SETTLED_AFTER = 2.0


@dataclass
class Delivery:
    """What reached the bridge of the events a client sent."""

    rows: list[asyncpg.Record]
    #: Sent, but held by Synapse in a transaction it never sends while it deems the bridge up.
    stranded: list[str] = field(default_factory=list)
    #: Sent, and excused by the caller (e.g. dropped from Synapse's memory at its restart).
    dropped: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return self.stranded + self.dropped


async def wait_delivered(
    inbox: Inbox,
    homeserver: SynapseProcess,
    sent: list[str],
    *,
    within: float,
    excused: Collection[str] = (),
) -> Delivery:
    """Poll until every event of ``sent`` is processed in the bridge's inbox, or provably is not
    the bridge's to have; return the inbox rows (in arrival order) and the shortfall.

    Synapse sometimes never sends an event (seen with 1.163): a transaction created while it
    had the bridge marked down, just as its recoverer found nothing left and marked the bridge
    up, stays unsent in ``application_services_txns`` until the bridge next goes down. Such an
    event is "stranded", not lost by the bridge: it is excused when Synapse deems the bridge
    up yet still holds it, unchanged for ``SETTLED_AFTER`` seconds (an ordinary transaction
    completes in milliseconds). Events in ``excused`` may be missing too, once the shortfall
    has settled. Anything else missing, or pending, keeps the poll going until ``within``.
    """
    excused_set = set(excused)
    state: dict[str, Any] = {"shortfall": None, "since": 0.0, "why": "nothing read yet"}

    async def done() -> Delivery | None:
        rows = await inbox.rows_for(sent)
        pending = [r["event_id"] for r in rows if r["state"] == "pending"]
        have = {r["event_id"] for r in rows}
        missing = [e for e in sent if e not in have]
        if pending:
            state["why"] = f"{len(pending)} pending, {len(missing)} not in the inbox"
            return None
        if not missing:
            return Delivery(rows)
        held = set()
        if not await asyncio.to_thread(homeserver.appservice_down):
            for events in (await asyncio.to_thread(homeserver.unsent_transactions)).values():
                held.update(events)
        stranded = [e for e in missing if e in held and e not in excused_set]
        dropped = [e for e in missing if e in excused_set]
        unexplained = [e for e in missing if e not in held and e not in excused_set]
        if unexplained:
            state["why"] = f"{len(unexplained)} not in the inbox: {unexplained[:5]}"
            return None
        shortfall = (tuple(stranded), tuple(dropped))
        if shortfall != state["shortfall"]:
            state["shortfall"], state["since"] = shortfall, time.monotonic()
            state["why"] = f"the shortfall {shortfall} to settle"
            return None
        if time.monotonic() - state["since"] < SETTLED_AFTER:
            return None
        if stranded:
            warnings.warn(
                f"Synapse holds {len(stranded)} event(s) for the bridge in a transaction it "
                f"does not send while it deems the bridge up: {stranded}",
                stacklevel=1,
            )
        return Delivery(rows, stranded=stranded, dropped=dropped)

    return await wait_until(
        done,
        within=within,
        what=lambda: f"{len(sent)} events delivered to the bridge ({state['why']})",
    )


def assert_once_in_order(delivery: Delivery, sent: list[str]) -> list[str]:
    """Every delivered event is in the inbox exactly once, in the order sent, and processed
    (see ``MESSAGE_DONE_STATE``) without a failed attempt. Returns the delivered event ids."""
    delivered = [e for e in sent if e not in set(delivery.missing)]
    assert [r["event_id"] for r in delivery.rows] == delivered
    assert {r["state"] for r in delivery.rows} == {MESSAGE_DONE_STATE}
    assert all(r["processed_at"] is not None for r in delivery.rows)
    assert all(r["attempts"] == 0 for r in delivery.rows)
    return delivered


# ---------------------------------------------------------------------------- the network side
#
# The network's data lives in the bridge's own database. Tests set it up as an operator would
# (``bridge users add``) where that works, and otherwise write the rows the services would.

GHOST_PREFIX = "_pn_"
ALIAS_PREFIX = "_pn_conv_"


def ghost_of(network_user_id: uuid.UUID | str) -> UserID:
    """The ghost MXID of a network user (the default ``username_template``)."""
    return UserID(f"@{GHOST_PREFIX}{network_user_id}:{SERVER_NAME}")


def portal_alias(conversation_id: uuid.UUID | str) -> RoomAlias:
    """The portal alias of a conversation (the default ``alias_template``)."""
    return RoomAlias(f"#{ALIAS_PREFIX}{conversation_id}:{SERVER_NAME}")


#: ``bridge users add`` starts the embedded PostgreSQL itself, so it refuses while the bridge
#: holds its data directory; after the first refusal the bed writes the rows directly.
_CLI_REFUSAL = "in use by another bridge process"


class Network:
    """Operators' and network users' doings, on the bridge's database (and CLI)."""

    def __init__(self, bridge: BridgeProcess, inbox: Inbox) -> None:
        self._bridge = bridge
        self._inbox = inbox

    #: How the last network user was made: "cli" or "db" (the CLI refused). Session-wide.
    how_users_are_added: str | None = None

    async def add_user(self, name: str, avatar: str | None = None) -> uuid.UUID:
        """A new network user (not linked to Matrix): ``bridge users add``, else a row."""
        if Network.how_users_are_added != "db":
            made = await asyncio.to_thread(self._cli_add_user, name, avatar)
            if made is not None:
                Network.how_users_are_added = "cli"
                return made
            Network.how_users_are_added = "db"
        user_id = uuid.uuid4()
        await self._inbox.fetch(
            "INSERT INTO network_user (id, display_name, avatar_url) VALUES ($1, $2, $3)",
            user_id,
            name,
            avatar,
        )
        return user_id

    def _cli_add_user(self, name: str, avatar: str | None) -> uuid.UUID | None:
        argv = [
            sys.executable,
            "-m",
            "bridge",
            "users",
            "add",
            "-c",
            str(self._bridge.config_path),
            "--name",
            name,
        ]
        if avatar:
            argv += ["--avatar", avatar]
        done = subprocess.run(
            argv,
            cwd=self._bridge.cwd,
            env=self._bridge.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0:
            return uuid.UUID(done.stdout.strip().splitlines()[-1])
        if _CLI_REFUSAL in done.stdout + done.stderr:
            return None
        raise RuntimeError(
            f"bridge users add failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )

    async def identity_of(self, matrix_user_id: str, name: str | None = None) -> uuid.UUID:
        """The network identity of a Matrix user, made now if the bridge has not made it yet."""
        async with self._inbox.connect() as conn:
            await conn.execute(
                """
                INSERT INTO network_user (id, display_name, matrix_user_id) VALUES ($1, $2, $3)
                ON CONFLICT (matrix_user_id) DO NOTHING
                """,
                uuid.uuid4(),
                name or matrix_user_id[1:].split(":", 1)[0],
                matrix_user_id,
            )
            user_id: uuid.UUID = await conn.fetchval(
                "SELECT id FROM network_user WHERE matrix_user_id = $1", matrix_user_id
            )
            return user_id

    async def find_identity(self, matrix_user_id: str) -> uuid.UUID | None:
        user_id: uuid.UUID | None = await self._inbox.fetchval(
            "SELECT id FROM network_user WHERE matrix_user_id = $1", matrix_user_id
        )
        return user_id

    async def connect(self, a: uuid.UUID, b: uuid.UUID) -> None:
        """Make two network users connections of each other."""
        low, high = sorted((a, b))
        await self._inbox.fetch(
            "INSERT INTO connection (id, user_low, user_high) VALUES ($1, $2, $3)",
            uuid.uuid4(),
            low,
            high,
        )

    async def group(
        self, created_by: uuid.UUID, participants: list[uuid.UUID], *, title: str, topic: str
    ) -> uuid.UUID:
        """A group conversation made on the network (no portal room yet)."""
        conversation_id = uuid.uuid4()
        async with self._inbox.connect() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO conversation (id, is_group, title, topic, created_by)
                VALUES ($1, true, $2, $3, $4)
                """,
                conversation_id,
                title,
                topic,
                created_by,
            )
            await conn.executemany(
                "INSERT INTO conversation_participant (conversation_id, user_id) VALUES ($1, $2)",
                [(conversation_id, u) for u in participants],
            )
        return conversation_id


# ---------------------------------------------------------------------------- more Matrix users


@contextlib.asynccontextmanager
async def logged_in(homeserver_url: str, user: str, password: str) -> AsyncIterator[ClientAPI]:
    """A Matrix client logged in with a password (a device of its own), logged out after."""
    client = ClientAPI(base_url=homeserver_url)
    try:
        await client.login(
            identifier=UserIdentifier(MatrixUserIdentifier(user=user)),
            password=password,
            store_access_token=True,
        )
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.logout()
        await client.api.session.close()


async def register_user(homeserver: SynapseProcess, localpart: str, password: str) -> ClientAPI:
    """A new Matrix user, registered with Synapse's shared secret; a logged-in client."""
    try:
        registered = await register_with_secret(
            homeserver.url, homeserver.shared_secret(), localpart, password
        )
    except RegistrationError as exc:
        raise AssertionError(str(exc)) from None
    return ClientAPI(
        mxid=UserID(registered["user_id"]),
        base_url=homeserver.url,
        token=registered["access_token"],
    )


# ---------------------------------------------------------------------------- what a client sees


async def membership_of(client: ClientAPI, room_id: RoomID, user_id: str) -> str | None:
    """``user_id``'s membership in the room as ``client`` sees it (None: never a member)."""
    try:
        content = await client.get_state_event(room_id, EventType.ROOM_MEMBER, user_id)
    except MNotFound:
        return None
    assert isinstance(content, MemberStateEventContent)
    return str(content.membership.value)


async def wait_membership(
    client: ClientAPI, room_id: RoomID, user_id: str, membership: str, *, within: float = 30
) -> None:
    seen: list[str | None] = [None]

    async def reached() -> bool:
        seen[0] = await membership_of(client, room_id, user_id)
        return seen[0] == membership

    await wait_until(
        reached,
        within=within,
        what=lambda: f"{user_id} to be {membership} in {room_id} (is {seen[0]})",
    )


async def timeline(client: ClientAPI, room_id: RoomID, limit: int = 100) -> list[dict[str, Any]]:
    """The room's latest ``limit`` events as ``client`` sees them (``/messages``), oldest first."""
    page = await client.api.request(
        Method.GET,
        ApiPath.v3.rooms[room_id].messages,
        query_params={"dir": "b", "limit": str(limit)},
    )
    assert isinstance(page, dict)
    return list(reversed(page.get("chunk") or []))


async def notices(client: ClientAPI, room_id: RoomID, sender: str = BOT_MXID) -> list[str]:
    """Bodies of the ``m.notice`` messages from ``sender`` in the room, oldest first."""
    return [
        str(event["content"]["body"])
        for event in await timeline(client, room_id)
        if event.get("type") == EventType.ROOM_MESSAGE.t
        and event.get("sender") == sender
        and (event.get("content") or {}).get("msgtype") == MessageType.NOTICE.value
    ]


async def wait_notice(
    client: ClientAPI,
    room_id: RoomID,
    matches: Callable[[str], bool],
    *,
    after: int = 0,
    within: float = 30,
    what: str = "a notice",
) -> tuple[str, int]:
    """The first bot notice from index ``after`` on that ``matches``; (its body, its index)."""
    seen: list[str] = []

    async def found() -> tuple[str, int] | None:
        seen[:] = await notices(client, room_id)
        for index, body in enumerate(seen[after:], start=after):
            if matches(body):
                return body, index
        return None

    return await wait_until(
        found, within=within, what=lambda: f"{what} in {room_id} (notices so far: {seen})"
    )


# ---------------------------------------------------------------------------- the REST API


@dataclass
class RestReply:
    """A REST API answer: the HTTP status and the decoded JSON body."""

    status: int
    body: Any

    def data(self, name: str) -> Any:
        """The envelope's payload ``name`` (``conversation``, ``messages``, ...), on a 2xx."""
        assert 200 <= self.status < 300, f"HTTP {self.status}: {self.body}"
        assert isinstance(self.body, dict) and self.body.get("dataName") == name, self.body
        return self.body[name]


class RestApi:
    """The bridge's REST API over real HTTP, as network users call it (HS256 JWTs).

    Tokens are minted with the shared secret of the bed's bridge config (``api.jwt.secret``);
    ``sub`` is the network user id. Use it as an async context manager (one HTTP session).
    """

    def __init__(self, bridge: BridgeProcess) -> None:
        self.base_url = bridge.url
        self._secret = str(bridge.config["api"]["jwt"]["secret"])
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RestApi:
        self._session = aiohttp.ClientSession(trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def token(
        self,
        user_id: uuid.UUID | str,
        *,
        name: str | None = None,
        admin: bool = False,
        lifetime: float = 600,
    ) -> str:
        import jwt  # PyJWT, a dependency of the bridge

        now = int(time.time())
        claims: dict[str, Any] = {"sub": str(user_id), "iat": now, "exp": now + int(lifetime)}
        if name is not None:
            claims["name"] = name
        if admin:
            claims["roles"] = ["admin"]
        return str(jwt.encode(claims, self._secret, algorithm="HS256"))

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_user: uuid.UUID | str | None,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        admin: bool = False,
    ) -> RestReply:
        """``method path`` with ``as_user``'s bearer token (none when ``as_user`` is None)."""
        assert self._session is not None, "use RestApi as an async context manager"
        headers = {}
        if as_user is not None:
            headers["Authorization"] = f"Bearer {self.token(as_user, admin=admin)}"
        async with self._session.request(
            method,
            f"{self.base_url}{path}",
            headers=headers,
            json=json_body,
            params=params,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            text = await resp.text()
            try:
                body: Any = json.loads(text) if text else None
            except ValueError:
                body = text
            return RestReply(resp.status, body)

    async def get(self, path: str, *, as_user: uuid.UUID | str | None, **kw: Any) -> RestReply:
        return await self.call("GET", path, as_user=as_user, **kw)

    async def post(
        self, path: str, body: Any, *, as_user: uuid.UUID | str | None, **kw: Any
    ) -> RestReply:
        return await self.call("POST", path, as_user=as_user, json_body=body, **kw)

    async def patch(
        self, path: str, body: Any, *, as_user: uuid.UUID | str | None, **kw: Any
    ) -> RestReply:
        return await self.call("PATCH", path, as_user=as_user, json_body=body, **kw)

    async def delete(self, path: str, *, as_user: uuid.UUID | str | None, **kw: Any) -> RestReply:
        return await self.call("DELETE", path, as_user=as_user, **kw)


# ---------------------------------------------------------------------------- what a client syncs


async def invite_of(client: ClientAPI, room_id: str) -> dict[str, Any] | None:
    """The client's own ``m.room.member`` invite event in ``room_id``, from an initial ``/sync``
    limited to that room (stripped state), or None while the client has no invite to it.

    Synapse caches a non-empty ``/sync`` answer for a while (``sync_response_cache_duration``,
    2 minutes by default) under the request's parameters, the ``filter`` among them: each call
    sends an inline filter of its own, so that it reads the present state.
    """
    inline = {
        "room": {"rooms": [room_id], "timeline": {"limit": 1}},
        "presence": {"types": []},
        "account_data": {"not_types": [f"e2e.nocache.{secrets.token_hex(8)}"]},
    }
    sync = await client.sync(timeout=0, filter_id=FilterID(json.dumps(inline)))
    room = ((sync.get("rooms") or {}).get("invite") or {}).get(room_id)
    if room is None:
        return None
    for event in (room.get("invite_state") or {}).get("events") or []:
        if event.get("type") == EventType.ROOM_MEMBER.t and event.get("state_key") == client.mxid:
            return dict(event)
    return None


async def wait_invite(client: ClientAPI, room_id: str, *, within: float = 30) -> dict[str, Any]:
    """Poll ``/sync`` until the client is invited to ``room_id``; its invite event."""

    async def invited() -> dict[str, Any] | None:
        return await invite_of(client, room_id)

    return await wait_until(
        invited, within=within, what=f"{client.mxid}'s invite to {room_id} in its sync"
    )
