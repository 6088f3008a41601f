"""Dead letters for operators: list, show, replay (idempotently), drop."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..appservice.transaction import parse_transaction
from ..db.database import Database
from ..errors import BridgeError
from ..matrix.inbox.store import InboxStore
from .dead_letter_store import DeadLetter, DeadLetterStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    letter_id: int
    #: 'replayed', 'already replayed', 'not found' or 'refused'
    outcome: str
    detail: str = ""


class DeadLetters:
    """Replay puts the event (or outbox action) back in its queue, where the workers process
    it like a new one; the dead letter is kept, marked replayed, so a second replay of it does
    nothing. ``wake`` is called after a replay committed (to rouse idle workers)."""

    def __init__(
        self,
        db: Database,
        store: DeadLetterStore | None = None,
        inbox: InboxStore | None = None,
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._store = store or DeadLetterStore()
        self._inbox = inbox or InboxStore()
        self._wake = wake

    async def list_letters(
        self, *, since: datetime | None = None, limit: int = 100, waiting_only: bool = False
    ) -> list[DeadLetter]:
        async with self._db.acquire() as conn:
            return await self._store.list_letters(
                conn, since=since, limit=limit, waiting_only=waiting_only
            )

    async def get(self, letter_id: int) -> DeadLetter | None:
        async with self._db.acquire() as conn:
            return await self._store.get_letter(conn, letter_id)

    async def replay_all(self) -> list[ReplayResult]:
        async with self._db.acquire() as conn:
            ids = await self._store.list_waiting_ids(conn)
        return await self.replay(ids)

    async def replay(self, ids: list[int]) -> list[ReplayResult]:
        results = [await self._replay_one(letter_id) for letter_id in ids]
        if self._wake is not None and any(r.outcome == "replayed" for r in results):
            self._wake()
        return results

    async def drop(self, ids: list[int]) -> list[int]:
        """Delete dead letters for good; the ids that existed."""
        async with self._db.transaction() as conn:
            dropped = await self._store.delete_letters(conn, ids)
        if dropped:
            log.info("Dropped dead letter(s) %s", ", ".join(map(str, dropped)))
        return dropped

    async def _replay_one(self, letter_id: int) -> ReplayResult:
        try:
            async with self._db.transaction() as conn:
                letter = await self._store.get_letter(conn, letter_id)
                if letter is None:
                    return ReplayResult(letter_id, "not found")
                if not await self._store.claim_replay(conn, letter_id):
                    return ReplayResult(letter_id, "already replayed")
                await self._requeue(conn, letter)
        except _Refused as exc:
            return ReplayResult(letter_id, "refused", str(exc))
        log.info("Replayed dead letter %d (%s, %s)", letter_id, letter.source, letter.event_id)
        return ReplayResult(letter_id, "replayed")

    async def _requeue(self, conn: asyncpg.Connection, letter: DeadLetter) -> None:
        match letter.source:
            case "outbox":
                payload = letter.payload if isinstance(letter.payload, dict) else {}
                outbox_id = payload.get("outbox_id")
                if not isinstance(outbox_id, int):
                    raise _Refused("the dead letter names no outbox row")
                if not await self._store.requeue_outbox_row(conn, outbox_id):
                    raise _Refused(f"outbox row {outbox_id} is not dead any more")
            case "inbox":
                payload = letter.payload if isinstance(letter.payload, dict) else {}
                kind = "edu" if (letter.event_id or "").startswith("edu:") else "pdu"
                event_type = payload.get("type")
                if letter.event_id is None or not isinstance(event_type, str):
                    raise _Refused("the dead letter holds no event id or type")
                sender = payload.get("sender")
                if not await self._store.requeue_inbox_event(
                    conn,
                    letter,
                    kind,
                    event_type,
                    sender if isinstance(sender, str) else None,
                ):
                    raise _Refused(f"event {letter.event_id} is not dead any more")
            case _:  # intake: malformed when received; taken in if it passes validation now
                body = json.dumps({"events": [letter.payload]}).encode()
                parsed = parse_transaction(f"replay-{letter.id}", body)
                if parsed.rejected or not parsed.events:
                    reason = parsed.rejected[0].error if parsed.rejected else "no event"
                    raise _Refused(f"still malformed: {reason}")
                stored = await self._inbox.insert_transaction(
                    conn,
                    f"replay-{letter.id}",
                    hashlib.sha256(body).digest(),
                    parsed.events,
                    [],
                    parsed.body_text,
                )
                if not stored:
                    raise _Refused("the event is already in the inbox")


class _Refused(BridgeError):
    status = 409
    errcode = "M_CONFLICT"
