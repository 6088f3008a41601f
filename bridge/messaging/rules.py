"""What makes a message postable, what it becomes, and whom it notifies: rules without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ..errors import BadRequest, Forbidden
from ..ids import clean_text
from ..notifications.service import Notify
from ..uuid7 import uuid7
from .html import sanitize_html
from .models import Conversation, Message, NewMessage, Origin

MAX_CONTENT = 64 * 1024
MSGTYPES = frozenset(
    {"m.text", "m.notice", "m.emote", "m.image", "m.file", "m.audio", "m.video", "m.location"}
)
MEDIA_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})
HTML_FORMAT = "org.matrix.custom.html"


def prepare_message(
    conversation: Conversation, sender: uuid.UUID, new: NewMessage, origin: Origin
) -> Message:
    """The message ``sender`` posts, validated and sanitised, not yet stored.

    ``new.reply_to_message_id`` must be in the conversation (the caller checks). Raises the
    error the sender gets when the message cannot be posted.
    """
    if sender not in conversation.participant_ids:
        raise Forbidden("only participants can post to this conversation")
    if new.msgtype not in MSGTYPES:
        raise BadRequest(f"unsupported msgtype {new.msgtype}")
    content = clean_text(new.content, limit=MAX_CONTENT)
    if not content.strip() and new.media is None:
        raise BadRequest("message content is empty")
    if new.msgtype in MEDIA_MSGTYPES and not valid_media(new.media):
        raise BadRequest("media messages need an mxc:// url")
    formatted = sanitize_html(new.formatted_content) if new.formatted_content else None
    mentions = tuple(u for u in new.mentions if u in conversation.participant_ids and u != sender)
    return Message(
        id=uuid7(),
        conversation_id=conversation.id,
        sender_id=sender,
        content=content,
        format=None if formatted is None else HTML_FORMAT,
        formatted_content=formatted,
        msgtype=new.msgtype,
        media=new.media,
        reply_to_message_id=new.reply_to_message_id,
        mentions=mentions,
        sent_at=new.sent_at or datetime.now(UTC),
        edited_at=None,
        is_active=True,
        record_version=1,
        origin=origin,
        event_id=new.event_id,
    )


def valid_media(media: object) -> bool:
    return (
        isinstance(media, dict)
        and isinstance(media.get("url"), str)
        and media["url"].startswith("mxc://")
    )


def message_notifications(conversation: Conversation, message: Message) -> list[Notify]:
    """A message's notifications: a mention for those it mentions, a message for the rest."""
    sender, mentions = message.sender_id, message.mentions
    preview = message.content[:200]
    payload = {
        "conversationId": str(conversation.id),
        "messageId": str(message.id),
        "senderUserId": str(sender),
    }
    title = conversation.title or "New message"
    if not mentions:  # the usual case
        rest = tuple(u for u in conversation.participant_ids if u != sender)
        return [Notify(rest, "message", title, preview, payload)] if rest else []
    others = [u for u in conversation.participant_ids if u != sender]
    mentioned = tuple(u for u in others if u in mentions)
    rest = tuple(u for u in others if u not in mentions)
    requests = []
    if mentioned:
        requests.append(Notify(mentioned, "mention", "You were mentioned", preview, payload))
    if rest:
        requests.append(Notify(rest, "message", title, preview, payload))
    return requests
