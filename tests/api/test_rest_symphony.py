"""/pod/v1/connection: Symphony's connection calls with numeric user ids, shapes, error
bodies, and the same connections seen over the seed-002 routes (UUIDs)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api, hs_token

POD = "/pod/v1/connection"
REQUESTS = "/networking-api/v1/connectionrequests"
CONNECTIONS = "/networking-api/v1/connections"


async def pod(api: Api, method: str, verb: str, user: uuid.UUID, **kw: Any) -> tuple[int, Any]:
    resp = await api.client.request(
        method, f"{POD}/{verb}", headers={"sessionToken": hs_token(user)}, **kw
    )
    return resp.status, await resp.json()


async def person(api: Api, name: str) -> tuple[uuid.UUID, int]:
    async with api.db.transaction() as conn:
        made = await api.services.users.create(conn, name)
    return made.id, made.number


def assert_symphony_error(status: int, body: Any, expected: int, fragment: str = "") -> None:
    assert status == expected, body
    assert set(body) == {"code", "message"} and body["code"] == expected
    assert fragment in body["message"], body["message"]


async def test_numbers_are_a_sequence_never_reused(api: Api) -> None:
    first = await person(api, "First")
    second = await person(api, "Second")
    assert second[1] > first[1] >= 1
    async with api.db.transaction() as conn:
        await conn.execute("DELETE FROM network_user WHERE id = $1", second[0])
    third = await person(api, "Third")
    assert third[1] > second[1]  # the deleted user's number is not given again
    async with api.db.transaction() as conn:
        again = await api.services.users.get(conn, first[0])
    assert again.number == first[1]  # stable


async def test_invite_accept_and_list(api: Api) -> None:
    ann, ann_no = await person(api, "Ann")
    bob, bob_no = await person(api, "Bob")
    status, body = await pod(api, "POST", "create", ann, json={"userId": bob_no})
    assert status == 200, body
    assert set(body) == {"userId", "status", "firstRequestedAt", "updatedAt", "requestCounter"}
    assert body["userId"] == bob_no and body["status"] == "PENDING_OUTGOING"
    assert body["requestCounter"] == 1 and isinstance(body["firstRequestedAt"], int)
    first = body["firstRequestedAt"]
    status, body = await pod(api, "POST", "create", ann, json={"userId": bob_no})
    assert body["requestCounter"] == 2 and body["firstRequestedAt"] == first

    status, body = await pod(api, "GET", "list", bob)
    assert status == 200 and body == [
        {
            "userId": ann_no,
            "status": "PENDING_INCOMING",
            "firstRequestedAt": first,
            "updatedAt": body[0]["updatedAt"],
            "requestCounter": 2,
        }
    ]
    # The same request over the seed-002 routes, with UUIDs.
    _, seed = await api.call("GET", REQUESTS, bob)
    (request,) = seed["connectionRequests"]
    assert (request["senderUserId"], request["receiverUserId"]) == (str(ann), str(bob))
    assert request["status"] == "pending" and request["requestCounter"] == 2

    assert (await pod(api, "GET", "list", ann))[1][0]["status"] == "PENDING_OUTGOING"
    assert (await pod(api, "GET", "list", ann, params={"status": "ACCEPTED"}))[1] == []
    assert_symphony_error(
        *await pod(api, "POST", "accept", ann, json={"userId": bob_no}), 404, "no pending"
    )
    status, body = await pod(api, "POST", "accept", bob, json={"userId": ann_no})
    assert status == 200 and body["status"] == "ACCEPTED" and body["userId"] == ann_no
    for user, other in ((ann, bob_no), (bob, ann_no)):
        listed = (await pod(api, "GET", "list", user, params={"status": "ACCEPTED"}))[1]
        assert [(c["userId"], c["status"]) for c in listed] == [(other, "ACCEPTED")]
    assert (await pod(api, "GET", "list", ann))[1] == []  # default: pending only
    _, seed = await api.call("GET", CONNECTIONS, ann)
    (link,) = seed["connections"]
    assert {link["userId1"], link["userId2"]} == {str(ann), str(bob)}


async def test_info_and_remove(api: Api) -> None:
    ann, ann_no = await person(api, "Ann")
    bob, bob_no = await person(api, "Bob")
    cat, cat_no = await person(api, "Cat")
    assert_symphony_error(*await pod(api, "GET", f"user/{bob_no}/info", ann), 404, str(bob_no))
    await pod(api, "POST", "create", ann, json={"userId": bob_no})
    status, body = await pod(api, "GET", f"user/{bob_no}/info", ann)
    assert status == 200 and body["userId"] == bob_no and body["status"] == "PENDING_OUTGOING"
    assert (await pod(api, "GET", f"user/{ann_no}/info", bob))[1]["status"] == "PENDING_INCOMING"
    assert_symphony_error(
        *await pod(api, "POST", f"user/{bob_no}/remove", ann), 404, "not connected"
    )
    await pod(api, "POST", "accept", bob, json={"userId": ann_no})
    assert (await pod(api, "GET", f"user/{bob_no}/info", ann))[1]["status"] == "ACCEPTED"

    status, body = await pod(api, "POST", f"user/{ann_no}/remove", bob)
    assert status == 200 and body == {"format": "TEXT", "message": "Connection Removed."}
    assert_symphony_error(*await pod(api, "GET", f"user/{bob_no}/info", ann), 404)
    assert (await api.call("GET", CONNECTIONS, ann))[1]["connections"] == []
    assert_symphony_error(*await pod(api, "GET", f"user/{cat_no + 1000}/info", ann), 404)
    for bad in ("0", "x", "-1", "9223372036854775808", str(cat)):
        assert_symphony_error(*await pod(api, "GET", f"user/{bad}/info", ann), 400, "userId")
        assert_symphony_error(*await pod(api, "POST", f"user/{bad}/remove", ann), 400, "uid")
    # A connection made over the seed-002 routes is seen (and removed) over /pod too.
    sent = (await api.call("POST", REQUESTS, cat, json={"receiverUserId": str(ann)}))[1]
    request_id = sent["connectionRequest"]["id"]
    await api.call("PATCH", f"{REQUESTS}/{request_id}", ann, json={"status": "accepted"})
    status, body = await pod(api, "GET", "list", ann, params={"status": "ACCEPTED"})
    assert [(c["userId"], c["status"]) for c in body] == [(cat_no, "ACCEPTED")]
    assert (await pod(api, "POST", f"user/{ann_no}/remove", cat))[0] == 200


async def test_reject_all_and_user_ids(api: Api) -> None:
    ann, ann_no = await person(api, "Ann")
    bob, bob_no = await person(api, "Bob")
    cat, cat_no = await person(api, "Cat")
    await pod(api, "POST", "create", bob, json={"userId": ann_no})
    await pod(api, "POST", "create", cat, json={"userId": ann_no})
    status, body = await pod(api, "POST", "reject", ann, json={"userId": bob_no})
    assert status == 200 and body["status"] == "REJECTED" and body["userId"] == bob_no
    everything = (await pod(api, "GET", "list", ann, params={"status": "ALL"}))[1]
    assert sorted((c["userId"], c["status"]) for c in everything) == sorted(
        [(bob_no, "REJECTED"), (cat_no, "PENDING_INCOMING")]
    )
    only_cat = (
        await pod(
            api, "GET", "list", ann, params={"status": "ALL", "userIds": f"{cat_no}, 99999999"}
        )
    )[1]
    assert [c["userId"] for c in only_cat] == [cat_no]
    rejected = (await pod(api, "GET", "list", ann, params={"status": "REJECTED"}))[1]
    assert [c["userId"] for c in rejected] == [bob_no]


async def test_symphony_errors(api: Api) -> None:
    ann = uuid.uuid4()
    resp = await api.client.get(f"{POD}/list")
    assert_symphony_error(resp.status, await resp.json(), 401, "no access token")
    assert_symphony_error(
        *await pod(api, "GET", "list", ann, params={"status": "LOST"}), 400, "status"
    )
    assert_symphony_error(*await pod(api, "POST", "create", ann, json={}), 400, "userId")
    assert_symphony_error(
        *await pod(api, "POST", "create", ann, json={"userId": str(uuid.uuid4())}), 400, "userId"
    )
    assert_symphony_error(*await pod(api, "POST", "create", ann, json={"userId": 0}), 400, "userId")
    assert_symphony_error(
        *await pod(api, "POST", "create", ann, json={"userId": 2**62}), 404, "no network user"
    )
    await pod(api, "GET", "list", ann)  # the token's user exists from its first call
    async with api.db.acquire() as conn:
        mine = (await api.services.users.get(conn, ann)).number
    assert_symphony_error(
        *await pod(api, "POST", "create", ann, json={"userId": mine}), 409, "yourself"
    )
    assert_symphony_error(
        *await pod(api, "GET", "list", ann, params={"userIds": str(uuid.uuid4())}), 400, "userIds"
    )
    assert_symphony_error(
        *await pod(api, "GET", "list", ann, params={"userIds": "99999999999999999999"}),
        400,
        "userIds",
    )
    assert_symphony_error(*await pod(api, "DELETE", "list", ann), 405)
    assert_symphony_error(*await pod(api, "GET", "nothing", ann), 404)
    resp = await api.client.post("/sessionauth/v1/logout")
    assert_symphony_error(resp.status, await resp.json(), 401, "sessionToken")
    resp = await api.client.get("/sessionauth/v1/nothing")
    assert_symphony_error(resp.status, await resp.json(), 404)


async def test_podcert_without_a_signing_key_is_503(api: Api) -> None:
    resp = await api.client.get("/pod/v1/podcert")
    assert_symphony_error(resp.status, await resp.json(), 503, "signing key")


async def test_other_issuers_sid_claim_is_not_a_session(api: Api) -> None:
    # OpenID providers put their own session id in ``sid``: not one of the bridge's sessions.
    resp = await api.client.get(
        f"{POD}/list", headers={"sessionToken": hs_token(uuid.uuid4(), sid="op-session-1")}
    )
    assert resp.status == 200, await resp.json()
