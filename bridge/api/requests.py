"""What the REST API accepts as request bodies: one type per body.

Every body refuses a field it does not declare (400 naming it; fields the server owns, like
``id`` or ``respondedAt``, say so). An optional field is left out, never ``null``. Rules across
fields that JSON Schema can state are declared with the type (``RULES``) and checked by the
decoder after the fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ..messaging.rules import MEDIA_MSGTYPES, MSGTYPES
from .fields import Id, Ids, Instant, SomeIds, SomeText, Text, TwoOrMoreIds

_MXC = "^mxc://[A-Za-z0-9.:\\-]+/[A-Za-z0-9_\\-]+$"
MxcUrl = Annotated[str, Meta(pattern=_MXC, max_length=255, description="an mxc:// URI")]
#: A count or size. JSON does not tell 1 from 1.0 (nor does JSON Schema's ``integer``), so a
#: number is read and must be whole; :meth:`Media.as_dict` stores it as an integer.
Count = Annotated[float, Meta(ge=0, le=2**53 - 1, multiple_of=1)]
MsgType = Literal[
    "m.audio", "m.emote", "m.file", "m.image", "m.location", "m.notice", "m.text", "m.video"
]
Scalar = Text | int | float | bool | None

#: Field names the server sets on its resources: refused in every body, naming the field.
SERVER_OWNED = frozenset(
    {
        "id",
        "createdAt",
        "updatedAt",
        "isActive",
        "recordVersion",
        "_owner",
        "lastMessageAt",
        "respondedAt",
        "firstRequestedAt",
        "requestCounter",
        "status_idx",
        "editedAt",
        "format",
        "seenAt",
        "isSeen",
        "connectedSince",
    }
)


class Body(Struct, forbid_unknown_fields=True):
    """A request body: a JSON object of declared fields only."""


class CreateConversation(Body):
    isGroup: bool
    participantIds: TwoOrMoreIds
    title: Text | UnsetType = UNSET
    topic: Text | UnsetType = UNSET


class UpdateConversation(Body):
    isGroup: bool | UnsetType = UNSET
    participantIds: SomeIds | UnsetType = UNSET
    title: Text | UnsetType = UNSET
    topic: Text | UnsetType = UNSET


class MediaInfo(Body):
    mimetype: Annotated[str, Meta(pattern="^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")] | (
        UnsetType
    ) = UNSET
    size: Count | UnsetType = UNSET
    w: Count | UnsetType = UNSET
    h: Count | UnsetType = UNSET
    duration: Count | UnsetType = UNSET
    thumbnail_url: MxcUrl | UnsetType = UNSET


class Media(Body):
    """A Matrix media reference: the content's ``mxc://`` URI, its info and file name."""

    url: MxcUrl
    info: MediaInfo | UnsetType = UNSET
    filename: Text | UnsetType = UNSET

    def as_dict(self) -> dict[str, Any]:
        """As stored and sent to Matrix (counts as integers)."""
        media: dict[str, Any] = msgspec.to_builtins(self)
        if "info" in media:
            media["info"] = {
                k: int(v) if isinstance(v, float) else v for k, v in media["info"].items()
            }
        return media


class CreateMessage(Body):
    conversationId: Id
    content: SomeText | UnsetType = UNSET
    senderUserId: Id | UnsetType = UNSET
    msgtype: MsgType | UnsetType = UNSET
    formattedContent: Text | UnsetType = UNSET
    media: Media | UnsetType = UNSET
    replyToMessageId: Id | UnsetType = UNSET
    mentions: Ids | UnsetType = UNSET
    sentAt: Instant | UnsetType = UNSET


class UpdateMessage(Body):
    content: SomeText | UnsetType = UNSET
    formattedContent: Text | UnsetType = UNSET
    readBy: SomeIds | UnsetType = UNSET
    deletedFor: SomeIds | UnsetType = UNSET


class CreateConnection(Body):
    userId1: Id
    userId2: Id


class CreateConnectionRequest(Body):
    receiverUserId: Id
    status: Literal["pending"] | UnsetType = UNSET
    message: Text | UnsetType = UNSET


class AnswerConnectionRequest(Body):
    status: Literal["accepted", "rejected"]


class DeviceSpec(Body):
    token: Annotated[SomeText, Meta(max_length=4096)]
    platform: Annotated[SomeText, Meta(max_length=32)]


class RegisterDevice(Body):
    device: DeviceSpec


class NotificationSpec(Body):
    userIds: SomeIds
    title: SomeText
    body: Text | UnsetType = UNSET
    kind: Annotated[SomeText, Meta(max_length=64)] | UnsetType = UNSET
    payload: dict[Text, Scalar] | UnsetType = UNSET


class SendNotification(Body):
    notification: NotificationSpec


class MarkSeen(Body):
    notificationIds: SomeIds


class UserConnectionRequest(Body):
    userId: Id


def _present(*names: str) -> dict[str, Any]:
    return {"anyOf": [{"required": [name]} for name in names]}


#: Rules across fields, as JSON Schema (the decoder checks the same, see ``check_rules``).
RULES: dict[type[Body], list[dict[str, Any]]] = {
    UpdateConversation: [{"minProperties": 1}],
    CreateMessage: [
        _present("content", "media"),
        {
            "anyOf": [
                {"properties": {"msgtype": {"enum": sorted(MSGTYPES - MEDIA_MSGTYPES)}}},
                {"required": ["media"]},
            ]
        },
    ],
    UpdateMessage: [
        {"minProperties": 1},
        {"anyOf": [{"not": {"required": ["formattedContent"]}}, {"required": ["content"]}]},
    ],
}


def _repeated(body: Body, path: str = "") -> str | None:
    """The first list of ``body`` (nested bodies too) holding an item twice."""
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if isinstance(value, list) and len(set(value)) != len(value):
            return f"{path}{name}: an item is given twice"
        if isinstance(value, Body) and (found := _repeated(value, f"{path}{name}.")):
            return found
    return None


def broken_rule(body: Body) -> str | None:
    """What is wrong across ``body``'s fields by its type's ``RULES`` (and its lists'
    ``uniqueItems``), or None."""
    if (repeated := _repeated(body)) is not None:
        return repeated
    if isinstance(body, UpdateConversation | UpdateMessage):
        if all(getattr(body, name) is UNSET for name in body.__struct_fields__):
            fields = ", ".join(body.__struct_fields__)
            return f"nothing to update: give at least one of {fields}"
    if isinstance(body, UpdateMessage):
        if body.formattedContent is not UNSET and body.content is UNSET:
            return "formattedContent goes with content"
    if isinstance(body, CreateMessage):
        if body.content is UNSET and body.media is UNSET:
            return "content is required (or media)"
        if isinstance(body.msgtype, str) and body.msgtype in MEDIA_MSGTYPES and not body.media:
            return f"media is required for msgtype {body.msgtype}"
    return None
