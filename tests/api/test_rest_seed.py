"""The REST API as a client written against the seed reference expects it: one test per
difference the reference review found, each quoting the reference line it checks
(``pageNumber=0``, every row, has its own module: ``test_rest_whole_lists.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from bridge.config import parse_config
from bridge.db.database import Database
from bridge.services import build_services
from tests.api.conftest import SECRET, Api, assert_error, hs_token, serve
from tests.api.test_rest_messaging import direct, post
from tests.conftest import config_data

CONV = "/messaging-api/v1/conversations"
MSG = "/messaging-api/v1/messages"
REQ = "/networking-api/v1/connectionrequests"


async def test_the_token_is_found_where_the_seed_puts_it(aiohttp_client: Any, db: Database) -> None:
    """Seed, networking service, token locations::

        | Query | access_token |
        | Header | linkedin-access-token |
        | Cookie | linkedin-access-token |

    With no ``api.token_name`` configured, each location works."""
    config = parse_config(config_data(api={"jwt": {"algorithm": "HS256", "secret": SECRET}}))
    assert config.api.token_name == "linkedin-access-token"
    client = await serve(aiohttp_client, config, db, build_services(db))
    token = hs_token(uuid.uuid4())
    path = "/networking-api/v1/connections"
    for kwargs in (
        {"params": {"access_token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"headers": {"linkedin-access-token": token}},
        {"cookies": {"linkedin-access-token": token}},
    ):
        if "cookies" in kwargs:
            client.session.cookie_jar.update_cookies(kwargs.pop("cookies"))
        resp = await client.get(path, **kwargs)
        assert resp.status == 200, (kwargs, await resp.text())
        client.session.cookie_jar.clear()
    resp = await client.get(path, headers={"access_token": token})  # the old default name
    assert resp.status == 401


async def test_unread_by_and_deleted_for_filter_messages(api: Api) -> None:
    """Seed, listMessages: "List messages in a conversation, ordered by sentAt ascending. Only
    participants can view. Support filters such as min/max sentAt, unreadBy, etc." and the
    Message resource's "| deletedFor | ID |"."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    conversation = (await direct(api, ann, bob))["id"]
    first = await post(api, ann, conversation, "one")
    second = await post(api, ann, conversation, "two")
    third = await post(api, ann, conversation, "three")
    mine = await post(api, bob, conversation, "bob's")

    async def listed(user: uuid.UUID, **params: str) -> list[str]:
        status, body = await api.call(
            "GET", MSG, user, params={"conversationId": conversation, **params}
        )
        assert status == 200, body
        return [m["id"] for m in body["messages"]]

    assert await listed(bob, unreadBy=str(bob)) == [first["id"], second["id"], third["id"]]
    await api.call("PATCH", f"{MSG}/{second['id']}", bob, json={"readBy": [str(bob)]})
    assert await listed(bob, unreadBy=str(bob)) == [third["id"]]  # reading is up to a message
    assert await listed(ann, unreadBy=str(ann)) == [mine["id"]]
    await api.call("PATCH", f"{MSG}/{first['id']}", bob, json={"deletedFor": [str(bob)]})
    assert first["id"] not in await listed(bob)
    assert await listed(bob, deletedFor=str(bob)) == [first["id"]]
    assert await listed(ann, deletedFor=str(ann)) == []
    # Someone else's reading or hiding: administrators only.
    assert_error(*await api.call("GET", MSG, ann, params={"unreadBy": str(bob)}), 403, "unreadBy")
    assert_error(
        *await api.call("GET", MSG, ann, params={"deletedFor": str(bob)}), 403, "deletedFor"
    )
    status, body = await api.call(
        "GET", MSG, ann, params={"conversationId": conversation, "deletedFor": str(bob)}, admin=True
    )
    assert status == 200 and [m["id"] for m in body["messages"]] == [first["id"]]
    status, body = await api.call(
        "GET", MSG, ann, admin=True,
        params=[("conversationId", conversation), ("unreadBy", str(ann)), ("unreadBy", str(bob))],
    )  # fmt: skip
    assert status == 200 and [m["id"] for m in body["messages"]] == [third["id"], mine["id"]]


async def test_common_routes_on_each_service(api: Api) -> None:
    """Seed, common routes: "Access Route: GET /currentuser", "Access Route: GET /permissions",
    "Access Route: GET /permissions/:permissionName", and "If no valid session exists, responds
    with a 401 Unauthorized." with "message": "No login found"."""
    me = uuid.uuid4()
    token = hs_token(me, name="Ann Lee", sid="session-42", roles=["admin"])
    for prefix in ("/messaging-api", "/networking-api", "/notification-api"):
        resp = await api.client.get(
            f"{prefix}/currentuser", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200
        assert await resp.json() == {
            "sessionId": "session-42", "userId": str(me), "fullname": "Ann Lee",
            "roleId": "admin", "accessToken": token,
        }  # fmt: skip
        resp = await api.client.get(f"{prefix}/currentuser")
        assert_error(resp.status, await resp.json(), 401, "No login found")
    status, granted = await api.call("GET", "/notification-api/permissions", me)
    assert status == 200
    names = {p["permissionName"] for p in granted}
    assert "notifications.receive" in names and "notifications.send" not in names
    assert all(p["canDo"] and p["roleId"] == "user" for p in granted)
    status, admin_granted = await api.call("GET", "/notification-api/permissions", me, admin=True)
    assert "notifications.send" in {p["permissionName"] for p in admin_granted}
    status, body = await api.call("GET", "/messaging-api/permissions/messaging.admin", me)
    assert status == 200 and body == {"canDo": False, "exceptions": []}
    status, body = await api.call(
        "GET", "/messaging-api/permissions/messaging.admin", me, admin=True
    )
    assert body == {"canDo": True, "exceptions": []}
    status, body = await api.call("GET", "/messaging-api/permissions/no.such", me, admin=True)
    assert body == {"canDo": False, "exceptions": []}
    assert_error(
        *await api.call("GET", "/messaging-api/permissions/%24bad", me), 400, "permissionName"
    )


async def test_connection_request_answers(api: Api) -> None:
    """Seed, createConnectionRequest answers ``"statusCode": "201"``; deleteConnectionRequest:
    "Sender or receiver may cancel/delete a connection request (soft-delete)." The bridge's own
    ``cancelled`` status is in the document's enum."""
    ann, bob, cat = await api.person("Ann"), await api.person("Bob"), await api.person("Cat")
    status, body = await api.call("POST", REQ, ann, json={"receiverUserId": str(bob)})
    assert status == 201
    status, renewed = await api.call("POST", REQ, ann, json={"receiverUserId": str(bob)})
    assert status == 201 and renewed["connectionRequest"]["requestCounter"] == 2
    status, deleted = await api.call("DELETE", f"{REQ}/{body['connectionRequest']['id']}", bob)
    assert status == 200 and deleted["connectionRequest"]["isActive"] is False
    assert deleted["connectionRequest"]["status"] == "rejected"
    _, sent = await api.call("POST", REQ, ann, json={"receiverUserId": str(cat)})
    status, cancelled = await api.call("DELETE", f"{REQ}/{sent['connectionRequest']['id']}", ann)
    assert cancelled["connectionRequest"]["isActive"] is False
    assert cancelled["connectionRequest"]["status"] == "cancelled"
    document = await (await api.client.get("/openapi.json")).json()
    status_schema = document["components"]["schemas"]["ConnectionRequest"]["properties"]["status"]
    assert "cancelled" in status_schema["enum"] and "cancelled" in status_schema["description"]


async def test_a_deleted_request_stays_deleted(api: Api) -> None:
    """Seed, deleteConnectionRequest: "Sender or receiver may cancel/delete a connection request
    (soft-delete)." and its answer's ``"isActive": false,``; listConnectionRequests: "List
    connection requests involving current user, filterable by status (pending, accepted,
    rejected)." The soft delete is stored: later reads and the status filter show it inactive;
    a rejection by PATCH (updateConnectionRequest: "Allows receiver of a pending connection
    request to accept or reject request.") is an answer and stays active; asking again makes a
    new request rather than reviving the deleted one."""
    ann, bob, cat = await api.person("Ann"), await api.person("Bob"), await api.person("Cat")
    _, asked = await api.call("POST", REQ, ann, json={"receiverUserId": str(bob)})
    deleted_id = asked["connectionRequest"]["id"]
    status, deleted = await api.call("DELETE", f"{REQ}/{deleted_id}", bob)
    assert status == 200 and deleted["connectionRequest"]["isActive"] is False
    for user in (ann, bob):
        _, got = await api.call("GET", f"{REQ}/{deleted_id}", user)
        assert got["connectionRequest"]["isActive"] is False
        assert got["connectionRequest"]["status"] == "rejected"
    _, rejected = await api.call("POST", REQ, cat, json={"receiverUserId": str(bob)})
    answered_id = rejected["connectionRequest"]["id"]
    status, answered = await api.call(
        "PATCH", f"{REQ}/{answered_id}", bob, json={"status": "rejected"}
    )
    assert status == 200 and answered["connectionRequest"]["isActive"] is True
    _, listed = await api.call("GET", REQ, bob, params={"status": "rejected"})
    assert {r["id"]: r["isActive"] for r in listed["connectionRequests"]} == {
        deleted_id: False, answered_id: True,
    }  # fmt: skip
    status, body = await api.call("DELETE", f"{REQ}/{deleted_id}", bob)
    assert_error(status, body, 409, "already rejected")
    status, again = await api.call("POST", REQ, ann, json={"receiverUserId": str(bob)})
    assert status == 201
    renewed = again["connectionRequest"]
    assert renewed["id"] != deleted_id and renewed["isActive"] is True
    assert renewed["requestCounter"] == 1 and renewed["status"] == "pending"
    _, got = await api.call("GET", f"{REQ}/{deleted_id}", ann)
    assert got["connectionRequest"]["isActive"] is False
    _, listed = await api.call("GET", REQ, ann)
    assert {r["id"]: r["isActive"] for r in listed["connectionRequests"]} == {
        renewed["id"]: True, deleted_id: False,
    }  # fmt: skip
    status, cancelled = await api.call("DELETE", f"{REQ}/{renewed['id']}", ann)
    assert cancelled["connectionRequest"]["isActive"] is False
    _, got = await api.call("GET", f"{REQ}/{renewed['id']}", bob)
    assert got["connectionRequest"]["isActive"] is False
    assert got["connectionRequest"]["status"] == "cancelled"


async def test_fields_the_server_owns_are_named(api: Api) -> None:
    """Seed, updateConnectionRequest: "| respondedAt | Date | false |
    request.body?.[“respondedAt”] |" — the server stamps it: a body giving it is refused,
    naming it, as are ``sentAt`` from a non-administrator and ``readBy`` on create."""
    ann, bob = await api.friend("Ann"), await api.friend("Bob")
    _, body = await api.call("POST", REQ, ann, json={"receiverUserId": str(uuid.uuid4())})
    conversation = (await direct(api, ann, bob))["id"]
    status, body = await api.call(
        "POST",
        MSG,
        ann,
        json={"conversationId": conversation, "content": "x", "readBy": [str(ann)]},
    )
    assert_error(status, body, 400, "readBy")
    status, body = await api.call(
        "POST", MSG, ann,
        json={"conversationId": conversation, "content": "x", "sentAt": "2024-01-01T00:00:00Z"},
    )  # fmt: skip
    assert_error(status, body, 400, "sentAt")
    _, asked = await api.call(
        "POST", REQ, ann, json={"receiverUserId": str(await api.person("Cy"))}
    )
    path = f"{REQ}/{asked['connectionRequest']['id']}"
    status, body = await api.call(
        "PATCH", path, ann, json={"status": "accepted", "respondedAt": "2024-01-01T00:00:00Z"}
    )
    assert_error(status, body, 400, "respondedAt")


async def test_the_envelope_carries_session_and_source(api: Api) -> None:
    """Seed, the response envelope: ``"source": "db",`` and ``"sessionId": "ID",``."""
    me = uuid.uuid4()
    resp = await api.client.get(
        CONV, headers={"Authorization": f"Bearer {hs_token(me, jti='token-7')}"}
    )
    body = await resp.json()
    assert body["source"] == "db" and body["sessionId"] == "token-7"
    assert "ssoTime" not in body and "cacheKey" not in body
    _, body = await api.call("GET", CONV, me)  # a token naming no session
    assert body["sessionId"] is None and body["source"] == "db"


async def test_deleting_a_conversation_hides_it_for_all(api: Api) -> None:
    """Seed, deleteConversation: "Soft-delete a conversation thread. Only participants can
    delete. This is 'hide for all' (e.g., group exit or complete deletion)." A 1:1 is deleted
    for both; a group is left, the answer no longer listing the leaver."""
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    conversation = (await direct(api, ann, bob))["id"]
    status, body = await api.call("DELETE", f"{CONV}/{conversation}", bob)
    assert status == 200 and body["conversation"]["isActive"] is False
    for user in (ann, bob):
        _, listed = await api.call("GET", CONV, user)
        assert conversation not in [c["id"] for c in listed["conversations"]]
        assert listed["paging"]["totalRowCount"] == 0
        _, got = await api.call("GET", f"{CONV}/{conversation}", user)
        assert got["conversation"]["isActive"] is False
    status, body = await api.call(
        "POST", MSG, ann, json={"conversationId": conversation, "content": "hi?"}
    )
    assert_error(status, body, 409, "deleted")
    again = await direct(api, ann, bob)  # the pair may start over
    assert again["id"] != conversation and again["isActive"] is True
    _, made = await api.call(
        "POST", CONV, ann, json={"isGroup": True, "participantIds": [str(ann), str(bob), str(cat)]}
    )
    group = made["conversation"]["id"]
    status, body = await api.call("DELETE", f"{CONV}/{group}", cat)
    assert status == 200 and body["conversation"]["isActive"] is False
    assert set(body["conversation"]["participantIds"]) == {str(ann), str(bob)}
    _, got = await api.call("GET", f"{CONV}/{group}", ann)
    assert got["conversation"]["isActive"] is True
