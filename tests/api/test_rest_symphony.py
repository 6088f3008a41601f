"""/pod/v1/connection: Symphony's connection calls, shapes and error bodies."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api, hs_token

POD = "/pod/v1/connection"


async def pod(api: Api, method: str, verb: str, user: uuid.UUID, **kw: Any) -> tuple[int, Any]:
    resp = await api.client.request(
        method, f"{POD}/{verb}", headers={"sessionToken": hs_token(user)}, **kw
    )
    return resp.status, await resp.json()


def assert_symphony_error(status: int, body: Any, expected: int, fragment: str = "") -> None:
    assert status == expected, body
    assert set(body) == {"code", "message"} and body["code"] == expected
    assert fragment in body["message"]


async def test_invite_accept_and_list(api: Api) -> None:
    ann, bob = uuid.uuid4(), await api.person("Bob")
    status, body = await pod(api, "POST", "create", ann, json={"userId": str(bob)})
    assert status == 200, body
    assert set(body) == {"userId", "status", "firstRequestedAt", "updatedAt", "requestCounter"}
    assert body["userId"] == str(bob) and body["status"] == "PENDING_OUTGOING"
    assert body["requestCounter"] == 1 and isinstance(body["firstRequestedAt"], int)
    first = body["firstRequestedAt"]
    status, body = await pod(api, "POST", "create", ann, json={"userId": str(bob)})
    assert body["requestCounter"] == 2 and body["firstRequestedAt"] == first

    status, body = await pod(api, "GET", "list", bob)
    assert status == 200 and body == [
        {
            "userId": str(ann),
            "status": "PENDING_INCOMING",
            "firstRequestedAt": first,
            "updatedAt": body[0]["updatedAt"],
            "requestCounter": 2,
        }
    ]
    assert (await pod(api, "GET", "list", ann))[1][0]["status"] == "PENDING_OUTGOING"
    assert (await pod(api, "GET", "list", ann, params={"status": "ACCEPTED"}))[1] == []

    assert_symphony_error(
        *await pod(api, "POST", "accept", ann, json={"userId": str(bob)}), 404, "no pending"
    )
    status, body = await pod(api, "POST", "accept", bob, json={"userId": str(ann)})
    assert status == 200 and body["status"] == "ACCEPTED" and body["userId"] == str(ann)
    for user, other in ((ann, bob), (bob, ann)):
        listed = (await pod(api, "GET", "list", user, params={"status": "ACCEPTED"}))[1]
        assert [(c["userId"], c["status"]) for c in listed] == [(str(other), "ACCEPTED")]
    assert (await pod(api, "GET", "list", ann))[1] == []  # default: pending only


async def test_reject_all_and_user_ids(api: Api) -> None:
    ann, bob, cat = await api.person("Ann"), uuid.uuid4(), uuid.uuid4()
    await pod(api, "POST", "create", bob, json={"userId": str(ann)})
    await pod(api, "POST", "create", cat, json={"userId": str(ann)})
    status, body = await pod(api, "POST", "reject", ann, json={"userId": str(bob)})
    assert status == 200 and body["status"] == "REJECTED"
    everything = (await pod(api, "GET", "list", ann, params={"status": "ALL"}))[1]
    assert sorted((c["userId"], c["status"]) for c in everything) == sorted(
        [(str(bob), "REJECTED"), (str(cat), "PENDING_INCOMING")]
    )
    only_cat = (
        await pod(
            api, "GET", "list", ann, params={"status": "ALL", "userIds": f"{cat}, {uuid.uuid4()}"}
        )
    )[1]
    assert [c["userId"] for c in only_cat] == [str(cat)]
    assert (await pod(api, "GET", "list", ann, params={"status": "REJECTED"}))[1][0][
        "userId"
    ] == str(bob)


async def test_symphony_errors(api: Api) -> None:
    ann = uuid.uuid4()
    resp = await api.client.get(f"{POD}/list")
    assert_symphony_error(resp.status, await resp.json(), 401, "no access token")
    assert_symphony_error(
        *await pod(api, "GET", "list", ann, params={"status": "LOST"}), 400, "status"
    )
    assert_symphony_error(*await pod(api, "POST", "create", ann, json={}), 400, "userId")
    assert_symphony_error(
        *await pod(api, "POST", "create", ann, json={"userId": str(uuid.uuid4())}),
        404,
        "no network user",
    )
    assert_symphony_error(
        *await pod(api, "GET", "list", ann, params={"userIds": "x"}), 400, "userIds"
    )
    assert_symphony_error(*await pod(api, "DELETE", "list", ann), 405)
    assert_symphony_error(*await pod(api, "GET", "nothing", ann), 404)
