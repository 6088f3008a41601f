"""Domain objects in the seed's resource shapes (camelCase, with its bookkeeping fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ..messaging.models import Conversation, Message
from ..networking.models import Connection, ConnectionRequest, RequestStatus
from ..notifications.models import Device, Notification

_STATUS_INDEX = {
    RequestStatus.PENDING: 0,
    RequestStatus.ACCEPTED: 1,
    RequestStatus.REJECTED: 2,
    RequestStatus.CANCELLED: 3,
}


def conversation(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "isGroup": c.is_group,
        "participantIds": list(c.participant_ids),
        "lastMessageAt": c.last_message_at,
        "title": c.title,
        "topic": c.topic,
        "isActive": True,
        "recordVersion": 1,
        "createdAt": c.created_at,
        "updatedAt": c.last_message_at or c.created_at,
        "_owner": c.created_by,
    }


def message(m: Message, viewer: uuid.UUID) -> dict[str, Any]:
    """A message as ``viewer`` sees it.

    ``readBy`` starts with the sender (the seed adds them by default); ``deletedFor`` shows only
    the viewer's own entry (who else hid a message is theirs to know). A message deleted for
    everyone keeps its place but not its content.
    """
    return {
        "id": m.id,
        "content": m.content if m.is_active else "",
        "senderUserId": m.sender_id,
        "deletedFor": [viewer] if viewer in m.deleted_for else [],
        "readBy": [m.sender_id, *m.read_by],
        "conversationId": m.conversation_id,
        "sentAt": m.sent_at,
        "msgtype": m.msgtype,
        "format": m.format if m.is_active else None,
        "formattedContent": m.formatted_content if m.is_active else None,
        "media": m.media if m.is_active else None,
        "replyToMessageId": m.reply_to_message_id,
        "mentions": list(m.mentions),
        "editedAt": m.edited_at,
        "isActive": m.is_active,
        "recordVersion": m.record_version,
        "createdAt": m.sent_at,
        "updatedAt": m.edited_at or m.sent_at,
        "_owner": m.sender_id,
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
        "id": n.id,
        "userId": n.user_id,
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "payload": n.payload,
        "isSeen": n.seen_at is not None,
        "seenAt": n.seen_at,
        "createdAt": n.created_at,
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
