"""``/notification-api``: devices and notifications (reference: notification)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import Forbidden
from ..listing import Window
from .context import ApiContext, principal_of
from .cursor import NOTIFICATIONS, decode, next_cursor
from .decoding import path_id
from .envelope import PageRequest
from .operations import Answer, NoBody, Operation, Reply
from .queries import NotificationsQuery, Query
from .requests import MarkSeen, RegisterDevice, SendNotification
from .resources import Device, Notification, Seen

_OLDEST_FIRST = {"createdAt", "+createdAt", "createdAt:asc"}


class NotificationApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._notifications = ctx.services.notifications

    def operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation("post", "/devices/register", "registerDevice",
                      "Register (or re-register) a push device",
                      self.register_device, Query, RegisterDevice,
                      Answer(Device, "device", status=201), links=("unregisterDevice",)),
            Operation("delete", "/devices/unregister/{deviceId}", "unregisterDevice",
                      "Remove one of your devices",
                      self.unregister_device, Query, NoBody, Answer(Device, "device")),
            Operation("get", "/notifications", "getNotifications",
                      "The session user's notifications",
                      self.list_notifications, NotificationsQuery, NoBody,
                      Answer(Notification, "notifications", many=True)),
            Operation("post", "/notifications", "sendNotification",
                      "Notify users (administrators)",
                      self.send_notification, Query, SendNotification,
                      Answer(Notification, "notifications", many=True, status=201)),
            Operation("post", "/notifications/seen", "markNotificationsSeen",
                      "Mark notifications seen (those of others are not counted)",
                      self.mark_seen, Query, MarkSeen, Answer(Seen, "seen", action="update")),
        ]  # fmt: skip

    async def register_device(self, request: web.Request, _: Query, body: RegisterDevice) -> Reply:
        me = principal_of(request).user_id
        registered = await self._notifications.add_device(
            me, body.device.token, body.device.platform
        )
        return Reply(Device.of(registered))

    async def unregister_device(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        me = principal_of(request).user_id
        device_id = path_id(request, "deviceId")
        removed = await self._notifications.remove_device(me, device_id)
        return Reply(Device.of(removed))

    async def list_notifications(
        self, request: web.Request, query: NotificationsQuery, _: NoBody
    ) -> Reply:
        me = principal_of(request).user_id
        page = PageRequest(query.page, query.limit, by_cursor=query.cursor is not UNSET)
        oldest_first = query.sortBy in _OLDEST_FIRST
        after = None if query.cursor is UNSET else decode(query.cursor)
        window = Window(limit=page.limit, offset=page.offset, after=after)
        found = await self._notifications.notifications_page(me, window, oldest_first=oldest_first)
        tail = found.rows[-1] if found.rows else None
        position = (tail.created_at, tail.id) if tail else None
        return Reply(
            [Notification.of(n) for n in found.rows],
            paging=page.paging(
                found.total, next_cursor=next_cursor(NOTIFICATIONS, found.more, position)
            ),
            filters=[],
        )

    async def send_notification(
        self, request: web.Request, _: Query, body: SendNotification
    ) -> Reply:
        """Notify users: administrators only."""
        if not principal_of(request).is_admin:
            raise Forbidden("only administrators send notifications")
        spec = body.notification
        created = await self._notifications.send(
            spec.userIds,
            kind=None if spec.kind is UNSET else spec.kind,
            title=spec.title,
            body=spec.body or "",
            payload=spec.payload or None,
        )
        return Reply([Notification.of(n) for n in created])

    async def mark_seen(self, request: web.Request, _: Query, body: MarkSeen) -> Reply:
        me = principal_of(request).user_id
        count = await self._notifications.see(me, body.notificationIds)
        return Reply(Seen(body.notificationIds, count))
