"""Matrix event handlers, registered per event type."""

from __future__ import annotations

from ...inbox.dispatch import Dispatcher
from ..context import BridgingContext
from .commands import CommandHandler
from .membership import MembershipHandler
from .message_batch import MessageBatch
from .messages import RoomEventHandlers


def register_handlers(dispatcher: Dispatcher, ctx: BridgingContext) -> None:
    room = RoomEventHandlers(ctx, CommandHandler(ctx))
    dispatcher.register("m.room.member", MembershipHandler(ctx))
    dispatcher.register("m.room.message", room.message, batch=MessageBatch(ctx, room))
    dispatcher.register("m.room.redaction", room.redaction)
    dispatcher.register("m.reaction", room.reaction)
    dispatcher.register("m.receipt", room.receipt)
    dispatcher.register("m.room.name", room.name_or_topic)
    dispatcher.register("m.room.topic", room.name_or_topic)
