"""Synthetic homeserver transactions shaped like the ones Synapse pushes to an appservice.

Each transaction holds ``events_per_txn`` ``m.room.message`` PDUs (Synapse's cap is 100) spread
over ``rooms`` rooms, with text bodies of 50-200 characters, about a third of them also carrying
HTML, ``origin_server_ts``, ``unsigned.age`` and unique 44-character ``$``-prefixed event ids
(the shape of room version 4+ ids). Generation is deterministic for a given seed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

_WORDS = (
    "the meeting moved to thursday please review the draft before lunch thanks for the intro "
    "happy to connect let us sync next week I shared the deck in the channel can you confirm "
    "the numbers for q3 great work on the launch welcome aboard see you at the offsite ok "
    "sounds good looping in the team the contract is signed deadline is friday noted"
).split()

_SERVER = "localhost"
_BASE_TS = 1_735_689_600_000  # 2025-01-01T00:00:00Z, in ms


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction's body, ready to PUT, and how many events it holds."""

    body: bytes
    event_count: int


class TransactionFactory:
    """Produces transactions with globally unique event ids, in a reproducible sequence."""

    def __init__(
        self, *, rooms: int = 1000, users: int = 500, events_per_txn: int = 100, seed: int = 1
    ) -> None:
        self._rng = random.Random(seed)
        self._rooms = [self._room_id(n) for n in range(rooms)]
        self._users = [f"@user{n}:{_SERVER}" for n in range(users)]
        self._events_per_txn = events_per_txn
        self._counter = 0
        self.events_made = 0

    @staticmethod
    def _room_id(n: int) -> str:
        digest = hashlib.sha256(f"room-{n}".encode()).hexdigest()
        return f"!{digest[:18]}:{_SERVER}"

    def _event_id(self) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"event-{self._counter}".encode()).digest()
        return "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _text(self) -> str:
        target = self._rng.randint(50, 200)
        words: list[str] = []
        length = -1
        while length < target:
            word = self._rng.choice(_WORDS)
            words.append(word)
            length += len(word) + 1
        return " ".join(words)[:target].rstrip()

    def _content(self) -> dict[str, Any]:
        body = self._text()
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if self._rng.random() < 0.35:
            words = body.split(" ")
            pivot = max(1, len(words) // 3)
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = (
                f"<p><strong>{' '.join(words[:pivot])}</strong> {' '.join(words[pivot:])}</p>"
            )
        if self._rng.random() < 0.2:
            content["m.mentions"] = {"user_ids": [self._rng.choice(self._users)]}
        return content

    def event(self) -> dict[str, Any]:
        self.events_made += 1
        ts = _BASE_TS + self.events_made * 37
        return {
            "type": "m.room.message",
            "room_id": self._rng.choice(self._rooms),
            "sender": self._rng.choice(self._users),
            "content": self._content(),
            "origin_server_ts": ts,
            "unsigned": {"age": self._rng.randint(5, 400)},
            "event_id": self._event_id(),
        }

    def transaction(self) -> Transaction:
        events = [self.event() for _ in range(self._events_per_txn)]
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        return Transaction(body=body, event_count=len(events))

    def batch(self, count: int) -> list[Transaction]:
        return [self.transaction() for _ in range(count)]
