"""What the REST API answers: one type per resource, in the reference's shapes (camelCase, with its
bookkeeping fields), built from the domain objects.

The envelope and error bodies are in :mod:`bridge.api.envelope`; the OpenAPI document takes
these types' JSON Schema as they are.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from ..messaging.models import Conversation as ConversationModel
from ..messaging.models import Message as MessageModel
from ..networking.models import Connection as ConnectionModel
from ..networking.models import ConnectionRequest as RequestModel
from ..networking.models import RequestStatus
from ..notifications.models import Device as DeviceModel
from ..notifications.models import Notification as NotificationModel
from .fields import Timestamp, UserNumber

_STATUS_INDEX = {
    RequestStatus.PENDING: 0,
    RequestStatus.ACCEPTED: 1,
    RequestStatus.REJECTED: 2,
    RequestStatus.CANCELLED: 3,
}

#: The seed's statuses and the bridge's own ``cancelled``.
RequestStatusName = Annotated[
    Literal["pending", "accepted", "rejected", "cancelled"],
    Meta(
        description="pending, accepted, rejected (the seed's), or cancelled: the bridge's own, "
        "for a request its sender took back (DELETE by the sender)"
    ),
]
SymphonyStatus = Literal["PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED"]


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the microsecond (lossless, so usable in filters)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


class Conversation(Struct, rename={"owner": "_owner"}):
    id: uuid.UUID
    isGroup: bool
    participantIds: list[uuid.UUID]
    lastMessageAt: Timestamp | None
    title: str | None
    topic: str | None
    isActive: bool
    recordVersion: int
    createdAt: Timestamp
    updatedAt: Timestamp
    owner: uuid.UUID | None

    @classmethod
    def of(cls, c: ConversationModel, *, active: bool | None = None) -> Conversation:
        """``active``: as the viewer sees it (False for one who left), else the stored flag."""
        return cls(
            id=c.id,
            isGroup=c.is_group,
            participantIds=list(c.participant_ids),
            lastMessageAt=iso_or_none(c.last_message_at),
            title=c.title,
            topic=c.topic,
            isActive=c.is_active if active is None else active,
            recordVersion=1,
            createdAt=iso(c.created_at),
            updatedAt=iso(c.last_message_at or c.created_at),
            owner=c.created_by,
        )


class Message(Struct, rename={"owner": "_owner"}):
    """A message as one viewer sees it.

    ``readBy`` starts with the sender (the reference adds them); ``deletedFor`` shows only
    the viewer's own entry (who else hid a message is theirs to know). A message deleted for
    everyone keeps its place but not its content.
    """

    id: uuid.UUID
    content: str
    senderUserId: uuid.UUID
    deletedFor: list[uuid.UUID]
    readBy: list[uuid.UUID]
    conversationId: uuid.UUID
    sentAt: Timestamp
    msgtype: str
    format: str | None
    formattedContent: str | None
    media: dict[str, Any] | None
    replyToMessageId: uuid.UUID | None
    mentions: list[uuid.UUID]
    editedAt: Timestamp | None
    isActive: bool
    recordVersion: int
    createdAt: Timestamp
    updatedAt: Timestamp
    owner: uuid.UUID

    @classmethod
    def of(cls, m: MessageModel, viewer: uuid.UUID) -> Message:
        sent = iso(m.sent_at)
        active = m.is_active
        return cls(
            id=m.id,
            content=m.content if active else "",
            senderUserId=m.sender_id,
            deletedFor=[viewer] if viewer in m.deleted_for else [],
            readBy=[m.sender_id, *m.read_by],
            conversationId=m.conversation_id,
            sentAt=sent,
            msgtype=m.msgtype,
            format=m.format if active else None,
            formattedContent=m.formatted_content if active else None,
            media=m.media if active else None,
            replyToMessageId=m.reply_to_message_id,
            mentions=list(m.mentions),
            editedAt=iso_or_none(m.edited_at),
            isActive=active,
            recordVersion=m.record_version,
            createdAt=sent,
            updatedAt=iso(m.edited_at) if m.edited_at else sent,
            owner=m.sender_id,
        )


class Connection(Struct, rename={"owner": "_owner"}):
    id: uuid.UUID
    connectedSince: Timestamp
    userId1: uuid.UUID
    userId2: uuid.UUID
    isActive: bool
    recordVersion: int
    createdAt: Timestamp
    updatedAt: Timestamp
    #: A connection belongs to both users: no single owner.
    owner: None

    @classmethod
    def of(cls, c: ConnectionModel, *, active: bool = True) -> Connection:
        since = iso(c.connected_since)
        return cls(c.id, since, c.user_low, c.user_high, active, 1, since, since, None)


class ConnectionRequest(Struct, rename={"owner": "_owner", "statusIdx": "status_idx"}):
    id: uuid.UUID
    receiverUserId: uuid.UUID
    senderUserId: uuid.UUID
    sentAt: Timestamp
    status: RequestStatusName
    statusIdx: int
    respondedAt: Timestamp | None
    message: str | None
    firstRequestedAt: Timestamp
    requestCounter: int
    isActive: bool
    recordVersion: int
    createdAt: Timestamp
    updatedAt: Timestamp
    owner: uuid.UUID

    @classmethod
    def of(cls, r: RequestModel) -> ConnectionRequest:
        """``isActive`` is false once a party deleted it (the seed's soft delete)."""
        return cls(
            id=r.id,
            receiverUserId=r.receiver_id,
            senderUserId=r.sender_id,
            sentAt=iso(r.sent_at),
            status=r.status.value,
            statusIdx=_STATUS_INDEX[r.status],
            respondedAt=iso_or_none(r.responded_at),
            message=r.message,
            firstRequestedAt=iso(r.first_requested_at),
            requestCounter=r.request_counter,
            isActive=r.deleted_at is None,
            recordVersion=r.request_counter + (r.responded_at is not None),
            createdAt=iso(r.first_requested_at),
            updatedAt=iso(r.deleted_at or r.responded_at or r.sent_at),
            owner=r.sender_id,
        )


class Notification(Struct):
    id: uuid.UUID
    userId: uuid.UUID
    kind: str
    title: str
    body: str
    payload: dict[str, Any]
    isSeen: bool
    seenAt: Timestamp | None
    createdAt: Timestamp

    @classmethod
    def of(cls, n: NotificationModel) -> Notification:
        return cls(
            id=n.id,
            userId=n.user_id,
            kind=n.kind,
            title=n.title,
            body=n.body,
            payload=n.payload,
            isSeen=n.seen_at is not None,
            seenAt=iso_or_none(n.seen_at),
            createdAt=iso(n.created_at),
        )


class Device(Struct):
    id: uuid.UUID
    userId: uuid.UUID
    token: str
    platform: str
    createdAt: Timestamp

    @classmethod
    def of(cls, d: DeviceModel) -> Device:
        return cls(d.id, d.user_id, d.token, d.platform, iso(d.created_at))


class Seen(Struct):
    notificationIds: list[uuid.UUID]
    seenCount: int


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class UserConnection(Struct):
    """Symphony's ``UserConnection``: the standing with another user, times in epoch ms."""

    userId: UserNumber
    status: SymphonyStatus
    firstRequestedAt: int | None
    updatedAt: int | None
    requestCounter: int

    @classmethod
    def of(
        cls,
        other: int,
        status: str,
        request: RequestModel | None,
        link: ConnectionModel | None,
    ) -> UserConnection:
        first = request.first_requested_at if request else link.connected_since if link else None
        updated = (
            link.connected_since
            if link is not None
            else (request.responded_at or request.sent_at)
            if request is not None
            else None
        )
        return cls(
            userId=other,
            status=status,  # type: ignore[arg-type]  # one of the four, by the caller
            firstRequestedAt=epoch_ms(first) if first else None,
            updatedAt=epoch_ms(updated) if updated else None,
            requestCounter=request.request_counter if request else 0,
        )


class PublicKey(Struct):
    keyId: str
    keyData: str
    jwk: dict[str, str] = field(default_factory=dict)
