"""/networking-api/v1: connection requests and connections over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api, assert_error

REQ = "/networking-api/v1/connectionrequests"
CONN = "/networking-api/v1/connections"


async def ask(api: Api, sender: uuid.UUID, receiver: uuid.UUID, **extra: Any) -> tuple[int, Any]:
    return await api.call("POST", REQ, sender, json={"receiverUserId": str(receiver), **extra})


async def test_send_and_repeat_a_request(api: Api) -> None:
    ann, bob = uuid.uuid4(), await api.person("Bob")
    status, body = await ask(api, ann, bob, message="hi", status="pending")
    assert status == 201, body
    request = body["connectionRequest"]
    assert (request["senderUserId"], request["receiverUserId"]) == (str(ann), str(bob))
    assert request["status"] == "pending" and request["status_idx"] == 0
    assert request["message"] == "hi" and request["requestCounter"] == 1
    assert request["isActive"] is True and request["_owner"] == str(ann)
    status, body = await ask(api, ann, bob)
    assert status == 201 and body["connectionRequest"]["id"] == request["id"]
    assert body["connectionRequest"]["requestCounter"] == 2
    assert body["connectionRequest"]["firstRequestedAt"] == request["firstRequestedAt"]


async def test_request_validation(api: Api) -> None:
    ann, bob = uuid.uuid4(), await api.person("Bob")
    assert_error(*await ask(api, ann, uuid.uuid4()), 404, "no network user")
    assert_error(*await ask(api, ann, bob, status="accepted"), 400, "status")
    assert_error(*await api.call("POST", REQ, ann, json={}), 400, "receiverUserId")
    assert_error(*await api.call("POST", REQ, ann, json={"receiverUserId": "bob"}), 400, "UUID")
    await api.call("GET", CONN, ann)  # creates Ann
    assert_error(*await ask(api, ann, ann), 409, "yourself")


async def test_only_the_parties_see_and_answer(api: Api) -> None:
    ann, bob, eve = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await api.call("GET", CONN, bob)
    request = (await ask(api, ann, bob))[1]["connectionRequest"]
    path = f"{REQ}/{request['id']}"
    assert (await api.call("GET", path, bob))[0] == 200
    assert_error(*await api.call("GET", path, eve), 403, "parties")
    assert_error(*await api.call("PATCH", path, eve, json={"status": "accepted"}), 403)
    assert_error(*await api.call("PATCH", path, ann, json={"status": "accepted"}), 403, "receiver")
    assert_error(*await api.call("PATCH", path, bob, json={"status": "maybe"}), 400, "status")
    assert_error(*await api.call("DELETE", path, eve), 403)
    status, body = await api.call("PATCH", path, bob, json={"status": "accepted"})
    assert status == 200, body
    assert body["connectionRequest"]["status"] == "accepted"
    assert body["connectionRequest"]["respondedAt"] is not None
    assert_error(*await api.call("PATCH", path, bob, json={"status": "rejected"}), 409)
    # Accepting made a connection both can see.
    _, body = await api.call("GET", CONN, ann)
    assert body["rowCount"] == 1 and body["paging"]["totalRowCount"] == 1
    connection = body["connections"][0]
    assert {connection["userId1"], connection["userId2"]} == {str(ann), str(bob)}
    cpath = f"{CONN}/{connection['id']}"
    assert (await api.call("GET", cpath, bob))[1]["connection"]["id"] == connection["id"]
    assert_error(*await api.call("GET", cpath, eve), 403)
    assert_error(*await api.call("DELETE", cpath, eve), 403)
    status, body = await api.call("DELETE", cpath, bob)
    assert status == 200 and body["connection"]["isActive"] is False
    assert_error(*await api.call("GET", cpath, ann), 404)
    assert (await api.call("GET", CONN, ann))[1]["connections"] == []


async def test_withdraw_by_either_party(api: Api) -> None:
    ann, bob = uuid.uuid4(), await api.person("Bob")
    await api.call("GET", CONN, bob)
    first = (await ask(api, ann, bob))[1]["connectionRequest"]
    status, body = await api.call("DELETE", f"{REQ}/{first['id']}", ann)
    assert status == 200 and body["connectionRequest"]["status"] == "cancelled"
    assert body["connectionRequest"]["isActive"] is False
    second = (await ask(api, ann, bob))[1]["connectionRequest"]
    assert second["id"] != first["id"]
    status, body = await api.call("DELETE", f"{REQ}/{second['id']}", bob)
    assert status == 200 and body["connectionRequest"]["status"] == "rejected"
    assert_error(*await api.call("DELETE", f"{REQ}/{second['id']}", bob), 409)


async def test_list_requests_by_status(api: Api) -> None:
    ann, bob, cat, dan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for user in (bob, cat, dan):
        await api.call("GET", CONN, user)
    to_bob = (await ask(api, ann, bob))[1]["connectionRequest"]
    await ask(api, ann, cat)
    from_dan = (await ask(api, dan, ann))[1]["connectionRequest"]
    await api.call("PATCH", f"{REQ}/{to_bob['id']}", bob, json={"status": "rejected"})
    await api.call("PATCH", f"{REQ}/{from_dan['id']}", ann, json={"status": "accepted"})

    async def statuses(**params: Any) -> list[str]:
        status, body = await api.call("GET", REQ, ann, params=params)
        assert status == 200, body
        return sorted(r["status"] for r in body["connectionRequests"])

    assert await statuses() == ["accepted", "pending", "rejected"]
    assert await statuses(status="pending") == ["pending"]
    assert_error(*await api.call("GET", REQ, ann, params={"status": "PENDING"}), 400, "status")
    assert await statuses(status=["pending", "accepted"]) == ["accepted", "pending"]
    assert await statuses(status="null") == []
    assert_error(*await api.call("GET", REQ, ann, params={"status": "lost"}), 400, "status")
    _, body = await api.call("GET", REQ, ann, params={"pageRowCount": "2"})
    assert body["rowCount"] == 2
    assert body["paging"] == {
        "pageNumber": 1,
        "pageRowCount": 2,
        "totalRowCount": 3,
        "pageCount": 2,
    }
    assert (await api.call("GET", REQ, bob))[1]["rowCount"] == 1


async def test_direct_connections_are_for_administrators(api: Api) -> None:
    ann, bob, cat = uuid.uuid4(), await api.person("Bob"), await api.person("Cat")
    payload = {"userId1": str(bob), "userId2": str(cat)}
    assert_error(*await api.call("POST", CONN, ann, json=payload), 403, "administrators")
    status, body = await api.call("POST", CONN, ann, json=payload, admin=True)
    assert status == 201 and body["connection"]["isActive"] is True
    assert_error(*await api.call("POST", CONN, ann, json=payload, admin=True), 409)
    assert_error(
        *await api.call("POST", CONN, ann, json={"userId1": str(bob)}, admin=True), 400, "userId2"
    )
    assert (await api.call("GET", CONN, cat))[1]["rowCount"] == 1
