"""Domain objects in the reference's resource shapes (camelCase, with its bookkeeping fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ..messaging.models import Conversation, Message
from ..networking.models import Connection, ConnectionRequest, RequestStatus
from ..notifications.models import Device, Notification
from .envelope import iso

_STATUS_INDEX = {
    RequestStatus.PENDING: 0,
    RequestStatus.ACCEPTED: 1,
    RequestStatus.REJECTED: 2,
    RequestStatus.CANCELLED: 3,
}


# The shapes of the list calls give ids and times as strings themselves: the JSON encoder's
# Python ``default`` hook, called once per value otherwise, was a tenth of a list's cost.


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def conversation(c: Conversation) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "isGroup": c.is_group,
        "participantIds": [str(u) for u in c.participant_ids],
        "lastMessageAt": iso(c.last_message_at),
        "title": c.title,
        "topic": c.topic,
        "isActive": True,
        "recordVersion": 1,
        "createdAt": iso(c.created_at),
        "updatedAt": iso(c.last_message_at or c.created_at),
        "_owner": _id(c.created_by),
    }


def message(m: Message, viewer: uuid.UUID) -> dict[str, Any]:
    """A message as ``viewer`` sees it.

    ``readBy`` starts with the sender (the reference adds them); ``deletedFor`` shows only
    the viewer's own entry (who else hid a message is theirs to know). A message deleted for
    everyone keeps its place but not its content.
    """
    sender = str(m.sender_id)
    sent = iso(m.sent_at)
    return {
        "id": str(m.id),
        "content": m.content if m.is_active else "",
        "senderUserId": sender,
        "deletedFor": [str(viewer)] if viewer in m.deleted_for else [],
        "readBy": [sender, *(str(u) for u in m.read_by)],
        "conversationId": str(m.conversation_id),
        "sentAt": sent,
        "msgtype": m.msgtype,
        "format": m.format if m.is_active else None,
        "formattedContent": m.formatted_content if m.is_active else None,
        "media": m.media if m.is_active else None,
        "replyToMessageId": _id(m.reply_to_message_id),
        "mentions": [str(u) for u in m.mentions],
        "editedAt": iso(m.edited_at),
        "isActive": m.is_active,
        "recordVersion": m.record_version,
        "createdAt": sent,
        "updatedAt": iso(m.edited_at) if m.edited_at else sent,
        "_owner": sender,
    }


def connection(c: Connection) -> dict[str, Any]:
    return {
        "id": c.id,
        "connectedSince": c.connected_since,
        "userId1": c.user_low,
        "userId2": c.user_high,
        "isActive": True,
        "recordVersion": 1,
        "createdAt": c.connected_since,
        "updatedAt": c.connected_since,
        "_owner": None,
    }


def connection_request(r: ConnectionRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "receiverUserId": r.receiver_id,
        "senderUserId": r.sender_id,
        "sentAt": r.sent_at,
        "status": r.status.value,
        "status_idx": _STATUS_INDEX[r.status],
        "respondedAt": r.responded_at,
        "message": r.message,
        "firstRequestedAt": r.first_requested_at,
        "requestCounter": r.request_counter,
        "isActive": r.status is not RequestStatus.CANCELLED,
        "recordVersion": r.request_counter + (r.responded_at is not None),
        "createdAt": r.first_requested_at,
        "updatedAt": r.responded_at or r.sent_at,
        "_owner": r.sender_id,
    }


def notification(n: Notification) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "userId": str(n.user_id),
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "payload": n.payload,
        "isSeen": n.seen_at is not None,
        "seenAt": iso(n.seen_at),
        "createdAt": iso(n.created_at),
    }


def device(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "userId": d.user_id,
        "token": d.token,
        "platform": d.platform,
        "createdAt": d.created_at,
    }


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def user_connection(
    other: uuid.UUID,
    status: str,
    request: ConnectionRequest | None,
    link: Connection | None,
) -> dict[str, Any]:
    """Symphony's ``UserConnection``: the standing with ``other``, times in epoch ms."""
    first = request.first_requested_at if request else link.connected_since if link else None
    updated = (
        link.connected_since
        if link is not None
        else (request.responded_at or request.sent_at)
        if request is not None
        else None
    )
    return {
        "userId": other,
        "status": status,
        "firstRequestedAt": epoch_ms(first) if first else None,
        "updatedAt": epoch_ms(updated) if updated else None,
        "requestCounter": request.request_counter if request else 0,
    }
