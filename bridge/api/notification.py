"""``/notification-api``: devices and notifications (reference: notification)."""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest, Forbidden
from ..ids import clean_text, parse_uuid
from . import body as b
from . import render
from .context import ApiContext, principal_of
from .cursor import next_cursor, parse_cursor
from .envelope import Envelope
from .paging import parse_page, single

DEFAULT_LIMIT = 20
DEFAULT_KIND = "announcement"
#: ``sortBy`` values: oldest first?
_SORTS = {
    "createdat": True,
    "createdat:asc": True,
    "+createdat": True,
    "-createdat": False,
    "createdat:desc": False,
}


class NotificationApi:
    def __init__(self, ctx: ApiContext, envelope: Envelope) -> None:
        self._db = ctx.db
        self._users = ctx.services.users
        self._notifications = ctx.services.notifications
        self._env = envelope

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/devices/register", self.register_device),
            web.delete("/devices/unregister/{deviceId}", self.unregister_device),
            web.get("/notifications", self.list_notifications, allow_head=False),
            web.post("/notifications", self.send_notification),
            web.post("/notifications/seen", self.mark_seen),
        ]

    async def register_device(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        device = b.mapping(await b.json_object(request), "device", required=True) or {}
        token = b.text(device, "token", required=True) or ""
        platform = b.text(device, "platform", required=True) or ""
        async with self._db.transaction() as conn:
            registered = await self._notifications.register_device(conn, me, token, platform)
        return self._env.ok(
            request,
            data_name="device",
            data=render.device(registered),
            action="create",
            status=201,
        )

    async def unregister_device(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        device_id = parse_uuid(request.match_info["deviceId"], "deviceId")
        async with self._db.transaction() as conn:
            removed = await self._notifications.unregister_device(conn, me, device_id)
        return self._env.ok(
            request, data_name="device", data=render.device(removed), action="delete"
        )

    async def list_notifications(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        page = parse_page(
            request.query,
            number_name="page",
            rows_name="limit",
            default_rows=DEFAULT_LIMIT,
            allow_all=False,
        )
        sort = single(request.query, "sortBy")
        if sort is not None and sort.lower() not in _SORTS:
            raise BadRequest("sortBy must be createdAt (oldest first) or -createdAt (newest first)")
        oldest_first = _SORTS[sort.lower()] if sort is not None else False
        kind = "notifications+" if oldest_first else "notifications-"
        after = parse_cursor(request.query, kind, number_name="page")
        async with self._db.acquire() as conn:
            found = await self._notifications.list_page(
                conn,
                me,
                oldest_first=oldest_first,
                after=after,
                limit=page.limit,
                offset=page.offset,
            )
        tail = found.rows[-1] if found.rows else None
        return self._env.ok(
            request,
            data_name="notifications",
            data=[render.notification(n) for n in found.rows],
            action="list",
            paging=page.describe_keyset(
                found.total,
                next_cursor(kind, found.more, (tail.created_at, tail.id) if tail else None),
                by_cursor=after is not None,
            ),
        )

    async def send_notification(self, request: web.Request) -> web.Response:
        """Notify users: administrators only."""
        if not principal_of(request).is_admin:
            raise Forbidden("only administrators send notifications")
        spec = b.mapping(await b.json_object(request), "notification", required=True) or {}
        recipients = b.ids(spec, "userIds", required=True) or []
        if not recipients:
            raise BadRequest("notification.userIds must name at least one user")
        title = (b.text(spec, "title", required=True) or "").strip()
        if not title:
            raise BadRequest("notification.title is required")
        kind = clean_text(b.text(spec, "kind") or DEFAULT_KIND, limit=64, multiline=False)
        async with self._db.transaction() as conn:
            await self._users.require_all(conn, recipients)
            created = await self._notifications.notify(
                conn,
                recipients,
                kind=kind or DEFAULT_KIND,
                title=title,
                body=b.text(spec, "body") or "",
                payload=b.mapping(spec, "payload"),
            )
        return self._env.ok(
            request,
            data_name="notifications",
            data=[render.notification(n) for n in created],
            action="create",
            status=201,
            paging=None,
        )

    async def mark_seen(self, request: web.Request) -> web.Response:
        me = principal_of(request).user_id
        ids = b.ids(await b.json_object(request), "notificationIds", required=True) or []
        if not ids:
            raise BadRequest("notificationIds must name at least one notification")
        async with self._db.transaction() as conn:
            count = await self._notifications.mark_seen(conn, me, ids)
        return self._env.ok(
            request,
            data_name="seen",
            data={"notificationIds": ids, "seenCount": count},
            action="update",
        )
