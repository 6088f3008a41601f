"""The outbox's actions: one type per Matrix side effect, checked by mypy where it is queued.

Each action is a msgspec ``Struct`` tagged by its kind (the row's ``action`` column, also
written into the payload as ``"action"``). The outbox store encodes them as the row's JSON
payload and decodes them by the ``action`` column, so rows queued before the tag was written
into the payload (the same fields, without it) decode too. A row that no type fits is read as
:class:`Unreadable` and dead-lettered with the reason.

``sender`` (the row's, not the action's) is who acts. ``room_id`` may be left out in a
``conv:<uuid>`` lane, where the conversation's portal room is looked up when the row is sent.
Any action may carry ``refs``: ``{"<JSON pointer into the payload>": <outbox id>}``, each
replaced at send time by that row's ``event_id`` (``{"/event_id": 41}`` to redact what row 41
sent, ``{"/content/m.relates_to/event_id": 41}`` to edit it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

#: A string that must not be empty (checked when a row is decoded for sending).
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
#: An outbox row id, as ``refs`` values hold them.
RowId = Annotated[int, msgspec.Meta(ge=1)]


class _Action(
    msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True, tag_field="action"
):
    refs: dict[str, RowId] = {}


class _RoomAction(_Action, kw_only=True):
    room_id: NonEmpty | None = None


class Send(_RoomAction, tag="send", kw_only=True):
    """Send a message event → ``{event_id, room_id}``.

    ``message_id``: the network message it carries (its event id is recorded when sent);
    ``report_of``: the row whose failure it reports (a failing report is not reported again).
    """

    event_type: NonEmpty
    content: dict[str, Any]
    message_id: str | None = None
    report_of: int | None = None


class Redact(_RoomAction, tag="redact", kw_only=True):
    """Redact an event (given, or filled in from ``refs``) → ``{event_id, room_id}``."""

    event_id: NonEmpty | None = None
    reason: str | None = None


class SetState(_RoomAction, tag="state", kw_only=True):
    """Set a state event → ``{event_id, room_id}``."""

    event_type: NonEmpty
    state_key: str = ""
    content: dict[str, Any]


class Invite(_RoomAction, tag="invite", kw_only=True):
    """Invite ``user_id`` → ``{room_id}``."""

    user_id: NonEmpty
    reason: str | None = None


class Kick(_RoomAction, tag="kick", kw_only=True):
    """Remove ``user_id`` → ``{room_id}``."""

    user_id: NonEmpty
    reason: str | None = None


class Join(_RoomAction, tag="join", kw_only=True):
    """Join (accepting an invite) → ``{room_id}``."""


class Leave(_RoomAction, tag="leave", kw_only=True):
    """Leave, or decline an invite → ``{room_id}``."""

    reason: str | None = None


class SetProfile(_Action, tag="profile", kw_only=True):
    """Set the sender's own display name and/or avatar → ``{}``.

    Only the fields given are set; ``None`` clears one. At least one must be given.
    """

    displayname: str | msgspec.UnsetType | None = msgspec.UNSET
    avatar_url: str | msgspec.UnsetType | None = msgspec.UNSET

    def fields(self) -> dict[str, str | None]:
        """The profile fields to set (those given)."""
        given = {"displayname": self.displayname, "avatar_url": self.avatar_url}
        return {k: v for k, v in given.items() if not isinstance(v, msgspec.UnsetType)}


Preset = Literal["private_chat", "public_chat", "trusted_private_chat"]


class CreateRoom(_Action, tag="create_room", kw_only=True):
    """Create a room → ``{room_id, alias?}``.

    What the room is for, recorded in the DB transaction that marks the row sent:
    ``conversation_id`` (its portal: a conversation that already has one gets no second room),
    ``management_for`` (that Matrix user's management room, whose first notice is
    ``initial_notice``) or ``connection_request_id`` (the request's direct room).
    """

    conversation_id: str | None = None
    management_for: str | None = None
    initial_notice: str | None = None
    connection_request_id: str | None = None
    name: str | None = None
    topic: str | None = None
    alias_localpart: str | None = None
    invite: list[NonEmpty] = []
    is_direct: bool = False
    preset: Preset = "private_chat"
    power_levels: dict[str, Any] | None = None
    initial_state: list[dict[str, Any]] | None = None
    creation_content: dict[str, Any] | None = None
    room_version: str | None = None


#: Every action the outbox sends.
OutboxAction = Send | Redact | SetState | Invite | Kick | Join | Leave | SetProfile | CreateRoom
#: Actions that act in a room.
RoomAction = Send | Redact | SetState | Invite | Kick | Join | Leave

_TYPES: tuple[type[OutboxAction], ...] = (
    Send,
    Redact,
    SetState,
    Invite,
    Kick,
    Join,
    Leave,
    SetProfile,
    CreateRoom,
)
_BY_KIND: dict[str, type[OutboxAction]] = {t.__struct_config__.tag: t for t in _TYPES}  # type: ignore[misc]
_DECODERS = {kind: msgspec.json.Decoder(t) for kind, t in _BY_KIND.items()}
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored row that no action type fits (an unknown kind, a missing or mistyped field)."""

    kind: str
    reason: str
    room_id: str | None = None  # the payload's, if it names one: where to report the failure


class _RoomOf(msgspec.Struct):
    room_id: NonEmpty | None = None


def kind_of(action: OutboxAction | type[OutboxAction]) -> str:
    """The kind of an action (or action type): the row's ``action`` column."""
    return str(action.__struct_config__.tag)


def encode(action: OutboxAction) -> bytes:
    """The row's JSON payload."""
    return _ENCODER.encode(action)


def decode(kind: str, payload: str | bytes) -> OutboxAction | Unreadable:
    """The action of a stored row, or why it cannot be read."""
    decoder = _DECODERS.get(kind)
    try:
        if decoder is not None:
            return decoder.decode(payload)
        reason = f"unknown action {kind!r}"
    except msgspec.DecodeError as exc:
        reason = f"payload: {str(exc).replace('`$', '`payload')}"
    try:
        room_id = msgspec.json.decode(payload, type=_RoomOf).room_id
    except msgspec.DecodeError:
        room_id = None
    return Unreadable(kind, reason, room_id)


def to_json(action: OutboxAction) -> dict[str, Any]:
    """The action as a JSON object (with its ``action`` tag)."""
    result: dict[str, Any] = msgspec.to_builtins(action)
    return result


def from_json(kind: str, document: dict[str, Any]) -> OutboxAction | Unreadable:
    """The action of a JSON object (as :func:`to_json` made it), or why it is not one."""
    return decode(kind, _ENCODER.encode(document))
