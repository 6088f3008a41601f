"""PATCH as JSON Patch (RFC 6902): every op, failures that change nothing, read-only fields,
secrets that can be written but never read."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.credentials_bed import BASE, Bed, basic
from tests.api.test_credentials_routes import assert_problem


async def _basic(bed: Bed) -> tuple[uuid.UUID, dict[str, Any], str]:
    owner = await bed.person()
    created = await bed.create(
        owner,
        {"type": "basic", "username": "crm", "secret": "old-password"},
        name="crm",
        fullname="CRM",
    )
    return owner, created, f"{BASE}/{owner}/{created['id']}"


async def _patch(bed: Bed, owner: uuid.UUID, url: str, ops: list[dict[str, Any]]) -> Any:
    return await bed.call(
        "PATCH", url, owner, json=ops, headers={"Content-Type": "application/json-patch+json"}
    )


async def test_every_op(bed: Bed) -> None:
    owner, created, url = await _basic(bed)
    ops = [
        {"op": "test", "path": "/name", "value": "crm"},
        {"op": "replace", "path": "/fullname", "value": "CRM prod"},
        {"op": "add", "path": "/expires", "value": "2031-05-01T00:00:00Z"},
        {"op": "copy", "from": "/config/username", "path": "/name"},
        {"op": "move", "from": "/fullname", "path": "/fullname"},
        {"op": "replace", "path": "/config/username", "value": "crm2"},
    ]
    reply = await _patch(bed, owner, url, ops)
    result = reply.result
    assert result["fullname"] == "CRM prod" and result["name"] == "crm"
    assert result["expires"].startswith("2031-05-01")
    assert result["config"] == {"type": "basic", "username": "crm2"}
    assert result["updated_at"] > created["updated_at"]
    removed = await _patch(bed, owner, url, [{"op": "remove", "path": "/expires"}])
    assert removed.result["expires"] is None
    moved = await _patch(
        bed,
        owner,
        url,
        [
            {"op": "move", "from": "/config/username", "path": "/name"},
            {"op": "add", "path": "/config/username", "value": "u"},
        ],
    )
    assert moved.result["name"] == "crm2" and moved.result["config"]["username"] == "u"


async def test_replacing_a_secret_re_encrypts_it(bed: Bed) -> None:
    owner, created, url = await _basic(bed)
    async with bed.db.acquire() as conn:
        before = await conn.fetchval(
            "SELECT sealed FROM credential WHERE id = $1", uuid.UUID(created["id"])
        )
    reply = await _patch(
        bed, owner, url, [{"op": "replace", "path": "/config/secret", "value": "new-password"}]
    )
    assert reply.status == 200 and "new-password" not in str(reply.body)
    async with bed.db.acquire() as conn:
        after = await conn.fetchval(
            "SELECT sealed FROM credential WHERE id = $1", uuid.UUID(created["id"])
        )
    assert after["secret"] != before["secret"]
    assert (
        await bed.call("GET", f"{BASE}/lookup/{created['id']}", auth=basic("crm", "old-password"))
    ).status == 401
    # The new password authenticates (a credential manages no credentials: 403, not 401).
    assert (
        await bed.call("GET", f"{BASE}/lookup/{created['id']}", auth=basic("crm", "new-password"))
    ).status == 403


async def _unchanged(bed: Bed, owner: uuid.UUID, url: str, created: dict[str, Any]) -> None:
    assert (await bed.call("GET", url, owner)).result == created
    # The secret is unchanged too.
    assert (await bed.call("GET", url, auth=basic("crm", "old-password"))).status == 403


@pytest.mark.parametrize(
    ("ops", "fragment"),
    [
        (
            [
                {"op": "replace", "path": "/fullname", "value": "x"},
                {"op": "test", "path": "/name", "value": "nope"},
            ],
            "operation 1 (test /name): test failed",
        ),
        (
            [{"op": "replace", "path": "/nothing/here", "value": 1}],
            "operation 0 (replace /nothing/here)",
        ),
        ([{"op": "remove", "path": "/config/token_url"}], "does not exist"),
        ([{"op": "move", "from": "/missing", "path": "/name"}], "operation 0"),
        ([{"op": "replace", "path": "/id", "value": str(uuid.uuid4())}], "id cannot be patched"),
        ([{"op": "replace", "path": "/managed", "value": "Managed"}], "managed cannot be patched"),
        (
            [{"op": "replace", "path": "/created_at", "value": "2020-01-01T00:00:00+00:00"}],
            "created_at cannot be patched",
        ),
        ([{"op": "remove", "path": "/updated_at"}], "updated_at cannot be patched"),
        (
            [{"op": "replace", "path": "/account_id", "value": str(uuid.uuid4())}],
            "account_id cannot be patched",
        ),
        (
            [{"op": "replace", "path": "/owner_type", "value": "integration"}],
            "owner_type cannot be patched",
        ),
        ([{"op": "remove", "path": "/config/secret"}], "secret"),
        ([{"op": "add", "path": "/colour", "value": "red"}], "colour"),
        ([{"op": "replace", "path": "/name", "value": "Bad Name"}], "name"),
        ([{"op": "test", "path": "/config/secret", "value": "old-password"}], "cannot be tested"),
        ([{"op": "test", "path": "/config", "value": {}}], "cannot be tested"),
        ([{"op": "test", "path": "", "value": {}}], "cannot be tested"),
        ([{"op": "copy", "from": "/config/secret", "path": "/fullname"}], "cannot be copied"),
        ([{"op": "move", "from": "/config/secret", "path": "/fullname"}], "cannot be copied"),
        ([{"op": "replace", "path": "/fullname"}], "value is required"),
        ([{"op": "copy", "path": "/fullname"}], "from is required"),
        ([{"op": "frobnicate", "path": "/fullname"}], "frobnicate"),
        ([{"op": "add", "path": "/fullname", "value": "x", "extra": 1}], "extra"),
        ([], "no operation"),
        ([{"op": "remove", "path": ""}], "operation 0"),
    ],
)
async def test_failures_change_nothing(bed: Bed, ops: list[dict[str, Any]], fragment: str) -> None:
    owner, created, url = await _basic(bed)
    reply = await _patch(bed, owner, url, ops)
    assert_problem(reply, 400, fragment)
    assert "old-password" not in str(reply.body)
    await _unchanged(bed, owner, url, created)


async def test_patch_body_must_be_a_list(bed: Bed) -> None:
    owner, created, url = await _basic(bed)
    reply = await _patch(bed, owner, url, {"op": "remove", "path": "/expires"})  # type: ignore[arg-type]
    assert_problem(reply, 400, "array")
    await _unchanged(bed, owner, url, created)


async def test_renaming_onto_another_name_is_409(bed: Bed) -> None:
    owner, created, url = await _basic(bed)
    await bed.create(owner, {"type": "secret", "secret": "x"}, name="taken")
    reply = await _patch(bed, owner, url, [{"op": "replace", "path": "/name", "value": "taken"}])
    assert_problem(reply, 409, "taken")
    await _unchanged(bed, owner, url, created)


async def test_changing_the_type_needs_the_new_secrets(bed: Bed) -> None:
    owner, _, url = await _basic(bed)
    ops = [{"op": "replace", "path": "/config", "value": {"type": "secret", "secret": "s3"}}]
    reply = await _patch(bed, owner, url, ops)
    assert reply.result["config"] == {"type": "secret"}
