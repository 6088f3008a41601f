"""The seed's common routes, on every service prefix: ``GET /currentuser``, ``GET
/permissions`` and ``GET /permissions/{permissionName}``.

The session is the verified token: its subject, its ``name`` claim, its ``sid`` (else ``jti``)
claim, its roles. The bridge's permissions follow from the role alone (``admin`` or ``user``):
there are no per-user grants, groups or objects, so ``exceptions`` is always empty.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from msgspec import Meta, Struct

from ..errors import BadRequest
from .context import Principal, principal_of
from .operations import Answer, NoBody, Operation, Reply
from .queries import Query

Role = Literal["admin", "user"]

#: Every permission of the bridge and the roles that have it.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "messaging.converse": frozenset({"admin", "user"}),
    "messaging.admin": frozenset({"admin"}),  # any sender, sentAt, participants not connected
    "networking.connect": frozenset({"admin", "user"}),
    "networking.admin": frozenset({"admin"}),  # connections without a request
    "notifications.receive": frozenset({"admin", "user"}),
    "notifications.send": frozenset({"admin"}),
    "users.actAs": frozenset({"admin"}),  # ?asUserId=
}
PERMISSION_NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_.:-]{0,99}$"
#: The ``permissionName`` path parameter.
PermissionName = Annotated[
    str, Meta(pattern=PERMISSION_NAME_PATTERN, description="a permission, like messaging.admin")
]


class Session(Struct):
    """The session of the token (seed: ``email`` and ``tenantId`` have no meaning here)."""

    sessionId: str | None
    userId: uuid.UUID
    fullname: str | None
    roleId: Role
    accessToken: str


class Permission(Struct):
    """One permission the session has, granted through its role."""

    id: str
    permissionName: str
    roleId: Role
    subjectUserId: uuid.UUID | None
    subjectUserGroupId: None
    objectId: None
    canDo: bool


class PermissionCheck(Struct):
    canDo: bool
    exceptions: list[uuid.UUID]


def role_of(principal: Principal) -> Role:
    return "admin" if principal.is_admin else "user"


def session_operations(service: str) -> list[Operation[Any, Any]]:
    """The common routes of one service prefix (``service`` prefixes their operationIds)."""
    return [
        Operation("get", "/currentuser", f"{service}CurrentUser",
                  "The session of the access token", current_user, Query, NoBody,
                  Answer(Session)),
        Operation("get", "/permissions", f"{service}Permissions",
                  "The permissions the session has (from its role)", permissions, Query,
                  NoBody, Answer(list[Permission])),
        Operation("get", "/permissions/{permissionName}", f"{service}Permission",
                  "Whether the session has a permission", permission, Query, NoBody,
                  Answer(PermissionCheck), path_types=(("permissionName", PermissionName),)),
    ]  # fmt: skip


async def current_user(request: web.Request, _: Query, __: NoBody) -> Reply:
    principal = principal_of(request)
    return Reply(
        Session(
            sessionId=principal.session_id,
            userId=principal.token_user_id,
            fullname=principal.name,
            roleId=role_of(principal),
            accessToken=principal.token,
        )
    )


async def permissions(request: web.Request, _: Query, __: NoBody) -> Reply:
    principal = principal_of(request)
    role = role_of(principal)
    return Reply(
        [
            Permission(f"{role}:{name}", name, role, None, None, None, True)
            for name, roles in PERMISSIONS.items()
            if role in roles
        ]
    )


async def permission(request: web.Request, _: Query, __: NoBody) -> Reply:
    """``canDo`` for a permission of the bridge; false for any other name."""
    name = request.match_info["permissionName"]
    if not re.fullmatch(PERMISSION_NAME_PATTERN, name):
        raise BadRequest("permissionName must be a permission name like messaging.admin")
    roles = PERMISSIONS.get(name, frozenset())
    return Reply(PermissionCheck(role_of(principal_of(request)) in roles, []))
