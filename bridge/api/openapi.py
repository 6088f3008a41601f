"""The OpenAPI 3.0 document of every REST route, served at ``GET /openapi.json``.

The operation table below is the reference; a test walks the mounted routers and checks that
each route is documented with its method, and that nothing documented is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .credentials_openapi import credential_openapi
from .paging import DEFAULT_ROWS, MAX_ROWS

OPENAPI_PATH = "/openapi.json"

_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_IDS = {"type": "array", "items": _ID}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


SCHEMAS: dict[str, Any] = {
    "Conversation": _obj(
        {
            "id": _ID,
            "isGroup": {"type": "boolean"},
            "participantIds": _IDS,
            "lastMessageAt": _TIME | {"nullable": True},
            "title": {"type": "string", "nullable": True},
            "topic": {"type": "string", "nullable": True},
            "isActive": {"type": "boolean"},
            "recordVersion": {"type": "integer"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "_owner": _ID | {"nullable": True},
        }
    ),
    "Message": _obj(
        {
            "id": _ID,
            "content": {"type": "string"},
            "senderUserId": _ID,
            "deletedFor": _IDS,
            "readBy": _IDS,
            "conversationId": _ID,
            "sentAt": _TIME,
            "msgtype": {"type": "string"},
            "format": {"type": "string", "nullable": True},
            "formattedContent": {"type": "string", "nullable": True},
            "media": {"type": "object", "nullable": True},
            "replyToMessageId": _ID | {"nullable": True},
            "mentions": _IDS,
            "editedAt": _TIME | {"nullable": True},
            "isActive": {"type": "boolean"},
            "recordVersion": {"type": "integer"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "_owner": _ID,
        }
    ),
    "Connection": _obj(
        {
            "id": _ID,
            "connectedSince": _TIME,
            "userId1": _ID,
            "userId2": _ID,
            "isActive": {"type": "boolean"},
            "recordVersion": {"type": "integer"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
        }
    ),
    "ConnectionRequest": _obj(
        {
            "id": _ID,
            "receiverUserId": _ID,
            "senderUserId": _ID,
            "sentAt": _TIME,
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected", "cancelled"]},
            "status_idx": {"type": "integer"},
            "respondedAt": _TIME | {"nullable": True},
            "message": {"type": "string", "nullable": True},
            "firstRequestedAt": _TIME,
            "requestCounter": {"type": "integer"},
            "isActive": {"type": "boolean"},
            "recordVersion": {"type": "integer"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "_owner": _ID,
        }
    ),
    "Notification": _obj(
        {
            "id": _ID,
            "userId": _ID,
            "kind": {"type": "string"},
            "title": {"type": "string"},
            "body": {"type": "string"},
            "payload": {"type": "object"},
            "isSeen": {"type": "boolean"},
            "seenAt": _TIME | {"nullable": True},
            "createdAt": _TIME,
        }
    ),
    "Device": _obj(
        {
            "id": _ID,
            "userId": _ID,
            "token": {"type": "string"},
            "platform": {"type": "string"},
            "createdAt": _TIME,
        }
    ),
    "Seen": _obj({"notificationIds": _IDS, "seenCount": {"type": "integer"}}),
    "Paging": _obj(
        {
            k: {"type": "integer"}
            for k in ("pageNumber", "pageRowCount", "totalRowCount", "pageCount")
        }
        | {
            "pageNumber": {
                "type": "integer",
                "nullable": True,
                "description": "null for a page asked for by cursor",
            },
            "nextCursor": {
                "type": "string",
                "nullable": True,
                "description": (
                    "lists of conversations, messages and notifications: pass as cursor= for "
                    "the next page; null when no rows follow"
                ),
            },
        }
    ),
    "Envelope": _obj(
        {
            "status": {"type": "string", "enum": ["OK"]},
            "statusCode": {"type": "integer"},
            "elapsedMs": {"type": "integer"},
            "userId": _ID,
            "requestId": {"type": "string"},
            "dataName": {"type": "string"},
            "method": {"type": "string"},
            "action": {"type": "string", "enum": ["get", "list", "create", "update", "delete"]},
            "appVersion": {"type": "string"},
            "rowCount": {"type": "integer"},
            "paging": _ref("Paging"),
            "filters": {"type": "array", "items": {"type": "object"}},
            "uiPermissions": {"type": "array", "items": {}},
        }
    ),
    "Error": _obj(
        {
            "result": {"type": "string", "enum": ["ERR"]},
            "status": {"type": "integer"},
            "message": {"type": "string"},
            "errCode": {"type": "integer"},
            "date": _TIME,
            "detail": {"type": "string"},
        }
    ),
    "UserConnection": _obj(
        {
            "userId": _ID,
            "status": {
                "type": "string",
                "enum": ["PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED"],
            },
            "firstRequestedAt": {"type": "integer", "format": "int64"},
            "updatedAt": {"type": "integer", "format": "int64"},
            "requestCounter": {"type": "integer"},
        }
    ),
    "UserConnectionRequest": _obj({"userId": _ID}, ("userId",)),
    "SymphonyError": _obj({"code": {"type": "integer"}, "message": {"type": "string"}}),
    "PublicKey": _obj(
        {
            "keyId": {"type": "string"},
            "keyData": {"type": "string"},
            "jwk": {"type": "object"},
        }
    ),
}


def _query(
    name: str, schema: dict[str, Any], description: str, *, many: bool = False
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "description": description}
    if many:
        param |= {"schema": {"type": "array", "items": schema}, "style": "form", "explode": True}
    else:
        param["schema"] = schema
    return param


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


PAGING = (
    _query(
        "pageNumber",
        {"type": "integer", "minimum": 0, "default": 1},
        f"page, from 1; 0 for every row (at most {MAX_ROWS})",
    ),
    _query(
        "pageRowCount",
        {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": DEFAULT_ROWS},
        "rows per page",
    ),
)
CURSOR = _query(
    "cursor",
    {"type": "string"},
    "paging.nextCursor of the previous page: the next page, as fast at any depth (pageNumber "
    "skips rows: deep pages cost their depth); replaces pageNumber; totalRowCount stays the "
    "whole list's",
)
_DATE_HELP = (
    "a date, an ISO 8601 instant, null, $today, $ltoday, $week, $lweek, $month, "
    "$leq-<date> (max), $lin-<date> (min); repeat for several"
)


def _id_filter(name: str) -> dict[str, Any]:
    return _query(name, {"type": "string"}, "an id; repeat for any of several; null", many=True)


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    params: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    data: tuple[str, str] | None = None  # (dataName, schema)
    many: bool = False
    status: int = 200
    security: str = "api"  # "api", "symphony" or "none"
    raw: dict[str, Any] | None = field(default=None)  # answer not in the envelope


def _body(props: dict[str, Any], *required: str) -> dict[str, Any]:
    return _obj(props, required)


M, N, P = "/messaging-api/v1", "/networking-api/v1", "/notification-api"
AS_USER = _query("asUserId", _ID, "administrators: act as this user")
OPS: tuple[Op, ...] = (
    Op(
        "get",
        f"{M}/conversations",
        "listConversations",
        "The session user's conversations, most recent first",
        "messaging",
        (
            *PAGING,
            CURSOR,
            _query("isGroup", {"type": "string", "enum": ["true", "false", "null"]}, "", many=True),
            _id_filter("participantIds"),
            _query(
                "participantIds_op",
                {"type": "string", "enum": ["contains", "overlap"]},
                "contains (default): all of them; overlap: any of them",
            ),
            _query("lastMessageAt", {"type": "string"}, _DATE_HELP, many=True),
        ),
        data=("conversations", "Conversation"),
        many=True,
    ),
    Op(
        "post",
        f"{M}/conversations",
        "createConversation",
        "Create a 1:1 or group conversation",
        "messaging",
        body=_body(
            {
                "isGroup": {"type": "boolean"},
                "participantIds": _IDS,
                "title": {"type": "string"},
                "topic": {"type": "string"},
            },
            "isGroup",
            "participantIds",
        ),
        data=("conversation", "Conversation"),
        status=201,
    ),
    Op(
        "get",
        f"{M}/conversations/{{conversationId}}",
        "getConversation",
        "A conversation (participants only)",
        "messaging",
        (_path("conversationId"),),
        data=("conversation", "Conversation"),
    ),
    Op(
        "patch",
        f"{M}/conversations/{{conversationId}}",
        "updateConversation",
        "Change a group's participants, title or topic",
        "messaging",
        (_path("conversationId"),),
        body=_body(
            {
                "isGroup": {"type": "boolean"},
                "participantIds": _IDS,
                "title": {"type": "string"},
                "topic": {"type": "string"},
            }
        ),
        data=("conversation", "Conversation"),
    ),
    Op(
        "delete",
        f"{M}/conversations/{{conversationId}}",
        "deleteConversation",
        "Leave a group conversation",
        "messaging",
        (_path("conversationId"),),
        data=("conversation", "Conversation"),
    ),
    Op(
        "get",
        f"{M}/messages",
        "listMessages",
        "Messages, oldest first (participants only)",
        "messaging",
        (
            *PAGING,
            CURSOR,
            _id_filter("conversationId"),
            _id_filter("senderUserId"),
            _id_filter("readBy"),
            _query("sentAt", {"type": "string"}, _DATE_HELP, many=True),
            _query(
                "afterMessageId",
                _ID,
                "seek: only messages after this one (totalRowCount counts those)",
            ),
        ),
        data=("messages", "Message"),
        many=True,
    ),
    Op(
        "post",
        f"{M}/messages",
        "createMessage",
        "Post a message",
        "messaging",
        body=_body(
            {
                "conversationId": _ID,
                "content": {"type": "string"},
                "senderUserId": _ID,
                "msgtype": {"type": "string"},
                "formattedContent": {"type": "string"},
                "media": {"type": "object"},
                "replyToMessageId": _ID,
                "mentions": _IDS,
                "sentAt": _TIME,
            },
            "conversationId",
            "content",
        ),
        data=("message", "Message"),
        status=201,
    ),
    Op(
        "get",
        f"{M}/messages/{{messageId}}",
        "getMessage",
        "A message (participants only)",
        "messaging",
        (_path("messageId"),),
        data=("message", "Message"),
    ),
    Op(
        "patch",
        f"{M}/messages/{{messageId}}",
        "updateMessage",
        "Edit (sender), or mark read / deleted for yourself",
        "messaging",
        (_path("messageId"),),
        body=_body(
            {
                "content": {"type": "string"},
                "formattedContent": {"type": "string"},
                "readBy": _IDS,
                "deletedFor": _IDS,
            }
        ),
        data=("message", "Message"),
    ),
    Op(
        "delete",
        f"{M}/messages/{{messageId}}",
        "deleteMessage",
        "Delete for everyone (sender) or for yourself",
        "messaging",
        (_path("messageId"),),
        data=("message", "Message"),
    ),
    Op(
        "get",
        f"{N}/connections",
        "listConnections",
        "The session user's connections",
        "networking",
        PAGING,
        data=("connections", "Connection"),
        many=True,
    ),
    Op(
        "post",
        f"{N}/connections",
        "createConnection",
        "Connect two users (administrators)",
        "networking",
        body=_body({"userId1": _ID, "userId2": _ID}, "userId1", "userId2"),
        data=("connection", "Connection"),
        status=201,
    ),
    Op(
        "get",
        f"{N}/connections/{{connectionId}}",
        "getConnection",
        "A connection (its users only)",
        "networking",
        (_path("connectionId"),),
        data=("connection", "Connection"),
    ),
    Op(
        "delete",
        f"{N}/connections/{{connectionId}}",
        "deleteConnection",
        "Disconnect",
        "networking",
        (_path("connectionId"),),
        data=("connection", "Connection"),
    ),
    Op(
        "get",
        f"{N}/connectionrequests",
        "listConnectionRequests",
        "Requests the session user sent or received",
        "networking",
        (
            *PAGING,
            _query(
                "status",
                {
                    "type": "string",
                    "enum": ["pending", "accepted", "rejected", "cancelled", "null"],
                },
                "",
                many=True,
            ),
        ),
        data=("connectionRequests", "ConnectionRequest"),
        many=True,
    ),
    Op(
        "post",
        f"{N}/connectionrequests",
        "createConnectionRequest",
        "Ask to connect (a repeat raises requestCounter, 200)",
        "networking",
        body=_body(
            {
                "receiverUserId": _ID,
                "status": {"type": "string", "enum": ["pending"]},
                "message": {"type": "string"},
            },
            "receiverUserId",
        ),
        data=("connectionRequest", "ConnectionRequest"),
        status=201,
    ),
    Op(
        "get",
        f"{N}/connectionrequests/{{connectionRequestId}}",
        "getConnectionRequest",
        "A request (its parties only)",
        "networking",
        (_path("connectionRequestId"),),
        data=("connectionRequest", "ConnectionRequest"),
    ),
    Op(
        "patch",
        f"{N}/connectionrequests/{{connectionRequestId}}",
        "updateConnectionRequest",
        "Accept or reject (receiver)",
        "networking",
        (_path("connectionRequestId"),),
        body=_body({"status": {"type": "string", "enum": ["accepted", "rejected"]}}, "status"),
        data=("connectionRequest", "ConnectionRequest"),
    ),
    Op(
        "delete",
        f"{N}/connectionrequests/{{connectionRequestId}}",
        "deleteConnectionRequest",
        "Withdraw: the sender cancels, the receiver rejects",
        "networking",
        (_path("connectionRequestId"),),
        data=("connectionRequest", "ConnectionRequest"),
    ),
    Op(
        "post",
        f"{P}/devices/register",
        "registerDevice",
        "Register a push device",
        "notification",
        body=_body(
            {
                "device": _body(
                    {"token": {"type": "string"}, "platform": {"type": "string"}},
                    "token",
                    "platform",
                )
            },
            "device",
        ),
        data=("device", "Device"),
        status=201,
    ),
    Op(
        "delete",
        f"{P}/devices/unregister/{{deviceId}}",
        "unregisterDevice",
        "Remove a device",
        "notification",
        (_path("deviceId"),),
        data=("device", "Device"),
    ),
    Op(
        "get",
        f"{P}/notifications",
        "getNotifications",
        "The session user's notifications",
        "notification",
        (
            _query("page", {"type": "integer", "minimum": 1, "default": 1}, ""),
            _query(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 20}, ""
            ),
            _query(
                "sortBy",
                {"type": "string", "enum": ["createdAt", "-createdAt"]},
                "oldest or (default) newest first",
            ),
            CURSOR,
        ),
        data=("notifications", "Notification"),
        many=True,
    ),
    Op(
        "post",
        f"{P}/notifications",
        "sendNotification",
        "Notify users (administrators)",
        "notification",
        body=_body(
            {
                "notification": _body(
                    {
                        "userIds": _IDS,
                        "title": {"type": "string"},
                        "body": {"type": "string"},
                        "kind": {"type": "string"},
                        "payload": {"type": "object"},
                    },
                    "userIds",
                    "title",
                )
            },
            "notification",
        ),
        data=("notifications", "Notification"),
        many=True,
        status=201,
    ),
    Op(
        "post",
        f"{P}/notifications/seen",
        "markNotificationsSeen",
        "Mark notifications seen",
        "notification",
        body=_body({"notificationIds": _IDS}, "notificationIds"),
        data=("seen", "Seen"),
    ),
    Op(
        "get",
        "/pod/v1/connection/list",
        "symphonyListConnections",
        "Symphony: connections by status",
        "symphony",
        (
            _query(
                "status",
                {
                    "type": "string",
                    "enum": ["PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED", "ALL"],
                },
                "default: both pending",
            ),
            _query("userIds", {"type": "string"}, "comma-separated user ids"),
        ),
        security="symphony",
        raw={"type": "array", "items": _ref("UserConnection")},
    ),
    *(
        Op(
            "post",
            f"/pod/v1/connection/{verb}",
            f"symphony{verb.title()}Connection",
            f"Symphony: {verb} a connection",
            "symphony",
            body=_ref("UserConnectionRequest"),
            security="symphony",
            raw=_ref("UserConnection"),
        )
        for verb in ("create", "accept", "reject")
    ),
    Op(
        "get",
        "/auth-api/publickey",
        "publicKey",
        "The bridge's token-signing public key",
        "auth",
        (_query("keyId", {"type": "string"}, "a specific key"),),
        security="none",
        raw=_ref("PublicKey"),
    ),
    Op(
        "get",
        OPENAPI_PATH,
        "openapi",
        "This document",
        "meta",
        security="none",
        raw={"type": "object"},
    ),
)


def _responses(op: Op) -> dict[str, Any]:
    error = _ref("SymphonyError" if op.security == "symphony" else "Error")
    if op.raw is not None:
        ok = op.raw
    else:
        assert op.data is not None
        name, schema = op.data
        item = _ref(schema)
        ok = {
            "allOf": [
                _ref("Envelope"),
                _obj({name: {"type": "array", "items": item} if op.many else item}),
            ]
        }
    responses: dict[str, Any] = {
        str(op.status): {"description": "OK", "content": {"application/json": {"schema": ok}}}
    }
    codes = (
        ("400", "404", "500")
        if op.security == "none"
        else ("400", "401", "403", "404", "409", "500")
    )
    for code in codes:
        responses[code] = {
            "description": "error",
            "content": {"application/json": {"schema": error}},
        }
    return responses


def build_openapi(token_name: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document; ``token_name`` names the token header and cookie."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": list(op.params) + ([AS_USER] if op.security != "none" else []),
            "responses": _responses(op),
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.body}},
            }
        if op.security == "none":
            operation["security"] = []
        elif op.security == "symphony":
            operation["security"] = [*API_SECURITY, {"sessionToken": []}]
        paths.setdefault(op.path, {})[op.method] = operation
    credential_paths, credential_schemas = credential_openapi()
    paths.update(credential_paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Bridge REST API",
            "version": version,
            "description": "Messaging, networking and notifications of the network, "
            "shaped like the seed reference; Symphony connection calls.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS | credential_schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "headerToken": {"type": "apiKey", "in": "header", "name": token_name},
                "cookieToken": {"type": "apiKey", "in": "cookie", "name": token_name},
                "sessionToken": {"type": "apiKey", "in": "header", "name": "sessionToken"},
                "basic": {"type": "http", "scheme": "basic"},
                "clientBasic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": API_SECURITY,
    }


API_SECURITY: list[dict[str, list[str]]] = [
    {"queryToken": []},
    {"bearer": []},
    {"headerToken": []},
    {"cookieToken": []},
    {"basic": []},
]
