from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Origin(enum.StrEnum):
    MATRIX = "matrix"
    NETWORK = "network"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    is_group: bool
    title: str | None
    topic: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    last_message_at: datetime | None
    participant_ids: tuple[uuid.UUID, ...] = ()
    #: False once deleted (a 1:1 deleted for both): not listed, no new messages.
    is_active: bool = True


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    content: str
    format: str | None
    formatted_content: str | None
    msgtype: str
    media: dict[str, Any] | None
    reply_to_message_id: uuid.UUID | None
    mentions: tuple[uuid.UUID, ...]
    sent_at: datetime
    edited_at: datetime | None
    is_active: bool
    record_version: int
    origin: Origin
    event_id: str | None
    read_by: tuple[uuid.UUID, ...] = field(default=())
    deleted_for: tuple[uuid.UUID, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What a sender posts; validated and sanitised by the service."""

    content: str
    msgtype: str = "m.text"
    formatted_content: str | None = None
    media: dict[str, Any] | None = None
    reply_to_message_id: uuid.UUID | None = None
    mentions: tuple[uuid.UUID, ...] = ()
    event_id: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    id: uuid.UUID
    message_id: uuid.UUID
    user_id: uuid.UUID
    key: str
    event_id: str | None
    created_at: datetime
