"""Strict inputs: every rule on every list route of the route table, fields the server owns,
and crafted bodies that must end as a 400 naming the field, never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any, get_origin

import pytest

from bridge.api.app import api_services, build_context
from bridge.api.decoding import _parameters
from bridge.api.operations import Operation
from bridge.api.queries import SECURITY_PARAMETERS
from bridge.db.database import Database
from bridge.services import build_services
from tests.api.conftest import Api, api_config, assert_error
from tests.api.test_rest_messaging import direct

CONV = "/messaging-api/v1/conversations"
MSG = "/messaging-api/v1/messages"
REQ = "/networking-api/v1/connectionrequests"


def _route_table() -> list[tuple[str, Operation[Any, Any]]]:
    """Every operation with its full path (the table only; nothing is served or connected)."""
    db = Database("postgres://unused/unused")
    services = build_services(db)
    ctx = build_context(api_config(), db, services)
    return [
        (s.prefix + op.path.replace("{fingerPrint}", "0" * 64), op)
        for s in api_services(ctx)
        for op in s.operations
    ]


def _is_list(op: Operation[Any, Any]) -> bool:
    return op.method == "get" and (op.answer.many or get_origin(op.answer.resource) is list)


LISTS = [(path, op) for path, op in _route_table() if _is_list(op)]
LIST_IDS = [op.operation_id for _, op in LISTS]


def test_the_list_routes_are_all_here() -> None:
    assert set(LIST_IDS) == {
        "listConversations",
        "listMessages",
        "listConnections",
        "listConnectionRequests",
        "getNotifications",
        "symphonyListConnections",
        "symphonyListCompanyCerts",
        "symphonyListPodManagedCerts",
        "symphonyCompanyCertsIssuedBy",
        "messagingPermissions",
        "networkingPermissions",
        "notificationPermissions",
    }


async def get(api: Api, path: str, params: list[tuple[str, str]]) -> tuple[int, Any]:
    admin = uuid.uuid4()  # an administrator, so asUserId is a parameter like any other
    return await api.call("GET", path, admin, params=params, admin=True)


def assert_refused(status: int, body: Any, name: str) -> None:
    """400 naming ``name``, in the reference's error body or Symphony's."""
    assert status == 400, body
    assert name in body["message"], body


@pytest.mark.parametrize(("path", "op"), LISTS, ids=LIST_IDS)
async def test_an_unknown_parameter_is_refused(api: Api, path: str, op: Any) -> None:
    # A filter a client believes applied, and isn't, is worse than an error.
    status, body = await get(api, path, [("repliedBy", str(uuid.uuid4()))])
    assert_refused(status, body, "repliedBy")
    assert "unknown query parameter" in body["message"]


@pytest.mark.parametrize(("path", "op"), LISTS, ids=LIST_IDS)
async def test_a_single_parameter_given_twice_is_refused(api: Api, path: str, op: Any) -> None:
    singles = [
        name
        for name, (many, _) in _parameters(op.query).items()
        if not many and name not in SECURITY_PARAMETERS and name != "asUserId"
    ]
    assert singles
    for name in singles:
        status, body = await get(api, path, [(name, "1"), (name, "1")])
        assert_refused(status, body, name)
        assert "only once" in body["message"] or name == "requestId", body


@pytest.mark.parametrize(("path", "op"), LISTS, ids=LIST_IDS)
async def test_an_empty_value_is_refused(api: Api, path: str, op: Any) -> None:
    names = [n for n in _parameters(op.query) if n not in SECURITY_PARAMETERS]
    for name in names:
        status, body = await get(api, path, [(name, "")])
        assert_refused(status, body, name)


@pytest.mark.parametrize(("path", "op"), LISTS, ids=LIST_IDS)
async def test_a_bad_cursor_is_refused(api: Api, path: str, op: Any) -> None:
    for cursor in ("not a cursor", "bTE3MTAwNzIwMDAwMDAwMDA", "m1_" + "0" * 31):
        status, body = await get(api, path, [("cursor", cursor)])
        assert_refused(status, body, "cursor")


# --- fields the server owns ---------------------------------------------------------------

SERVER_OWNED_CASES = [
    (CONV, "lastMessageAt", "2024-01-01T00:00:00Z"),
    (CONV, "id", str(uuid.uuid4())),
    (CONV, "createdAt", "2024-01-01T00:00:00Z"),
    (CONV, "_owner", str(uuid.uuid4())),
    (MSG, "readBy", []),
    (MSG, "deletedFor", []),
    (MSG, "id", str(uuid.uuid4())),
    (MSG, "recordVersion", 3),
    (MSG, "editedAt", "2024-01-01T00:00:00Z"),
    (MSG, "isActive", True),
    (REQ, "respondedAt", "2024-01-01T00:00:00Z"),
    (REQ, "senderUserId", str(uuid.uuid4())),
    (REQ, "requestCounter", 2),
    (REQ, "firstRequestedAt", "2024-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("path", "field", "value"), SERVER_OWNED_CASES)
async def test_fields_the_server_owns_are_refused(
    api: Api, path: str, field: str, value: Any
) -> None:
    """Seed (networking, messaging): ``respondedAt``, ``lastMessageAt``, ``readBy`` and
    ``deletedFor`` are the service's to set; a client's value is refused, never ignored."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = await direct(api, ann, bob)
    valid = {
        CONV: {"isGroup": True, "participantIds": [str(ann), str(bob), str(uuid.uuid4())]},
        MSG: {"conversationId": conversation["id"], "content": "hi"},
        REQ: {"receiverUserId": str(bob)},
    }[path]
    status, body = await api.call("POST", path, ann, json=valid | {field: value})
    assert_error(status, body, 400, field)
    assert "set by the server" in body["message"] or "unknown field" in body["message"]


async def test_sent_at_is_for_administrators(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = await direct(api, ann, bob)
    payload = {
        "conversationId": conversation["id"],
        "content": "x",
        "sentAt": "2024-05-01T10:00:00Z",
    }
    assert_error(*await api.call("POST", MSG, ann, json=payload), 400, "sentAt")
    status, body = await api.call("POST", MSG, ann, json=payload, admin=True)
    assert status == 201 and body["message"]["sentAt"] == "2024-05-01T10:00:00.000000Z"


async def test_patch_refuses_server_fields_and_unknown_ones(api: Api) -> None:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = await direct(api, ann, bob)
    _, body = await api.call(
        "POST", MSG, ann, json={"conversationId": conversation["id"], "content": "x"}
    )
    path = f"{MSG}/{body['message']['id']}"
    assert_error(
        *await api.call("PATCH", path, ann, json={"sentAt": "2024-01-01T00:00:00Z"}), 400, "sentAt"
    )
    assert_error(*await api.call("PATCH", path, ann, json={"contnet": "typo"}), 400, "contnet")
    assert_error(
        *await api.call("PATCH", path, ann, json={"formattedContent": "<b>x</b>"}), 400, "content"
    )


# --- crafted bodies: 400 naming the field, never a 500 --------------------------------------


async def raw_post(api: Api, path: str, user: uuid.UUID, data: bytes, **kw: Any) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    from tests.api.conftest import hs_token

    extra = {"roles": ["admin"]} if kw.get("admin") else {}
    headers["Authorization"] = f"Bearer {hs_token(user, **extra)}"
    resp = await api.client.post(path, data=data, headers=headers)
    return resp.status, await resp.json()


@pytest.fixture
async def chat(api: Api) -> tuple[uuid.UUID, str]:
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    return ann, (await direct(api, ann, bob))["id"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"content": "a\u0000b"}, "content"),
        ({"content": "x", "formattedContent": "<b>\u0000</b>"}, "formattedContent"),
        ({"media": {"url": "mxc://a/b", "filename": "x\u0000"}}, "media.filename"),
        ({"media": {"url": "mxc://a/b\u0000"}}, "media.url"),
        ({"media": {"url": "mxc://a/b", "info": {"w": 1.5}}}, "media.info.w"),
        ({"media": {"url": "https://a/b"}}, "media.url"),
        ({"media": {"url": "mxc://a/b", "extra": {"deep": 1}}}, "media.extra"),
        ({"content": "x", "msgtype": "m.image"}, "media"),
        ({"content": "x", "sentAt": "9999-12-31"}, "sentAt"),
        ({"content": "x", "sentAt": "9999-12-31T23:59:59-01:00"}, "sentAt"),
        ({"content": "x", "sentAt": "0001-01-01T00:00:00+01:00"}, "sentAt"),
        ({"content": "x", "sentAt": ""}, "sentAt"),
        ({"content": "x", "mentions": [None]}, "mentions"),
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
    ],
)
async def test_crafted_message_bodies(
    api: Api, chat: tuple[uuid.UUID, str], extra: dict[str, Any], field: str
) -> None:
    ann, conversation = chat
    body = {"conversationId": conversation} | extra
    status, answer = await api.call("POST", MSG, ann, json=body, admin=True)
    assert_error(status, answer, 400, field)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"content": "\xff\xfe", "conversationId": "x"}', "UTF-8"),
        (b'{"content": "\\ud800 lone"}', "content"),  # a lone surrogate is no text
        (b'{"content": NaN}', "JSON"),
        (b'{"content": "x", "mentions": [Infinity]}', "JSON"),
        # Nesting past what the parser follows is refused before any field is read.
        (b"[" * 100_000, "nested too deeply"),
        (b'{"media":' * 5_000 + b"1" + b"}" * 5_000, "nested too deeply"),
        (b'{"content": "x", "mentions": ' + b"[" * 100_000, "nested too deeply"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (b'"just a string"', "object"),
    ],
)
async def test_crafted_json(
    api: Api, chat: tuple[uuid.UUID, str], data: bytes, fragment: str
) -> None:
    ann, _ = chat
    status, body = await raw_post(api, MSG, ann, data)
    assert_error(status, body, 400, fragment)


async def test_crafted_notification_bodies(api: Api) -> None:
    admin, ann = uuid.uuid4(), await api.person("Ann")

    def note(**fields: Any) -> dict[str, Any]:
        return {"notification": {"userIds": [str(ann)], "title": "t"} | fields}

    for body, field in [
        (note(payload={"k": "a\u0000"}), "notification.payload"),
        (note(payload={"k\u0000": "a"}), "notification.payload"),
        (note(payload={"k": {"nested": True}}), "notification.payload"),
        (note(payload={"k": 1e400}), "JSON"),
        (note(title="\u0000"), "notification.title"),
        (note(title="  "), "notification.title"),
        (note(userIds=[]), "notification.userIds"),
        (note(userIds=[str(ann), str(ann)]), "notification.userIds"),
    ]:
        data = json.dumps(body).encode() if "1e400" not in str(body) else None
        if data is None:
            data = (
                b'{"notification": {"userIds": ["%s"], "title": "t", "payload": {"k": 1e400}}}'
                % (str(ann).encode())
            )
        status, answer = await raw_post(
            api, "/notification-api/notifications", admin, data, admin=True
        )
        assert_error(status, answer, 400, field)


async def test_date_filters_at_the_edges(api: Api) -> None:
    ann = uuid.uuid4()
    for value in ("9999-12-31", "$leq-9999-12-31", "2024-02-30", "2023-02-29", "0001-01-01T00:00"):
        assert_error(*await api.call("GET", MSG, ann, params={"sentAt": value}), 400, "sentAt")
    for value in (
        "2999-12-31",
        "2024-02-29",
        "$lin-1900-01-01T00:00-23:59",
        "2999-12-31T23:59+00:00",
    ):
        status, body = await api.call("GET", MSG, ann, params={"sentAt": value})
        assert status == 200, body
