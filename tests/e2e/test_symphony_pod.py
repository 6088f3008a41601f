"""A connection made over Symphony's /pod routes (numeric user ids), seen in Matrix and over
the seed-002 routes (UUIDs); its removal leaves the direct room bridged but unconnected."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from mautrix.api import Method, Path
from mautrix.client import ClientAPI

from tests.e2e.bed import Inbox, Network, RestApi, ghost_of, wait_invite, wait_until
from tests.e2e.test_network_to_matrix import (
    CONNECTIONS,
    REQUESTS,
    STEP,
    _management_room,
    _request_room,
)

pytestmark = pytest.mark.e2e

POD = "/pod/v1/connection"


async def _number(inbox: Inbox, user_id: uuid.UUID) -> int:
    value = await inbox.fetchval("SELECT number FROM network_user WHERE id = $1", user_id)
    assert isinstance(value, int)
    return value


async def test_pod_connection_seen_in_matrix_and_over_rest(
    new_matrix_user: Callable[[str], Awaitable[ClientAPI]],
    inbox: Inbox,
    network: Network,
    rest: RestApi,
) -> None:
    alice = await new_matrix_user("alice")
    me = await network.identity_of(alice.mxid, "Alice Pod")
    carol = await network.add_user("Carol Pod")
    await _management_room(alice, inbox)
    me_no, carol_no = await _number(inbox, me), await _number(inbox, carol)

    sent = await rest.post(f"{POD}/create", {"userId": me_no}, as_user=carol)
    assert sent.status == 200, sent.body
    assert sent.body["userId"] == me_no and sent.body["status"] == "PENDING_OUTGOING"

    # Over the seed-002 routes: the same request, with UUIDs.
    listed = (await rest.get(REQUESTS, as_user=me)).data("connectionRequests")
    (request,) = [r for r in listed if r["senderUserId"] == str(carol)]
    assert request["receiverUserId"] == str(me) and request["status"] == "pending"

    # In Matrix: carol's ghost invites alice to a direct room, as for the seed-002 route.
    room_id = await _request_room(inbox, request["id"])
    invite = await wait_invite(alice, room_id, within=STEP)
    assert invite["sender"] == ghost_of(carol) and invite["content"].get("is_direct") is True

    # Alice accepts by joining; /pod shows it with numeric ids.
    await alice.join_room_by_id(room_id)

    async def accepted() -> dict[str, object] | None:
        got = await rest.get(f"{POD}/user/{me_no}/info", as_user=carol)
        return got.body if got.status == 200 and got.body["status"] == "ACCEPTED" else None

    info = await wait_until(accepted, within=STEP, what="the /pod standing ACCEPTED")
    assert info["userId"] == me_no
    mine = await rest.get(f"{POD}/list", as_user=me, params={"status": "ACCEPTED"})
    assert [(c["userId"], c["status"]) for c in mine.body] == [(carol_no, "ACCEPTED")]
    assert len((await rest.get(CONNECTIONS, as_user=carol)).data("connections")) == 1

    # Removal: no connection any more, the direct room stays with carol's ghost in it.
    removed = await rest.post(f"{POD}/user/{me_no}/remove", None, as_user=carol)
    assert removed.status == 200 and removed.body == {
        "format": "TEXT", "message": "Connection Removed.",
    }  # fmt: skip
    assert (await rest.get(CONNECTIONS, as_user=carol)).data("connections") == []
    assert (await rest.get(f"{POD}/user/{me_no}/info", as_user=carol)).status == 404
    members = await alice.api.request(Method.GET, Path.v3.rooms[room_id].joined_members)
    assert ghost_of(carol) in members["joined"] and alice.mxid in members["joined"]
    assert await inbox.fetchval("SELECT count(*) FROM portal WHERE room_id = $1", room_id) == 1
