"""The seed's credentials routes over real HTTP: bodies, envelopes, rules, errors, who may do
what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.api import ApiServices
from bridge.db.database import Database
from tests.api.credentials_bed import ADMIN_ACCOUNT, BASE, Bed, Reply, basic, make_bed


def assert_problem(reply: Reply, status: int, fragment: str = "") -> None:
    """RFC 9457 problem details, as Synqly answers errors."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    body = reply.body
    assert body["status"] == status
    assert body["title"] and body["type"] == "about:blank"
    assert body["instance"].startswith(BASE)
    assert body["occurred_at"].endswith("Z")
    assert fragment in body["detail"], body["detail"]


RESPONSE_FIELDS = {
    "id",
    "account_id",
    "owner_type",
    "fullname",
    "config",
    "expires",
    "managed",
    "name",
    "created_at",
    "updated_at",
}


async def test_create_each_type_answers_without_secrets(bed: Bed) -> None:
    owner = await bed.person()
    configs: list[dict[str, Any]] = [
        {
            "type": "aws",
            "access_key_id": "AKIA1",
            "secret_access_key": "aws-s3cr3t",
            "session": "sess-s3cr3t",
        },
        {"type": "token", "secret": "tok-s3cr3t-0123456789"},
        {"type": "basic", "username": "crm", "secret": "basic-s3cr3t"},
        {"type": "secret", "secret": "plain-s3cr3t"},
        {
            "type": "oauth_client",
            "client_id": "client-1",
            "client_secret": "oauth-s3cr3t-0123456789",
            "token_url": "https://idp.example/token",
            "extra": {"audience": "extra-s3cr3t"},
        },
    ]
    expected_public = [
        {"type": "aws", "access_key_id": "AKIA1"},
        {"type": "token"},
        {"type": "basic", "username": "crm"},
        {"type": "secret"},
        {"type": "oauth_client", "client_id": "client-1", "token_url": "https://idp.example/token"},
    ]
    for config, public in zip(configs, expected_public, strict=True):
        reply = await bed.call(
            "POST",
            f"{BASE}/{owner}",
            owner,
            json={"config": config, "fullname": f"My {config['type']}"},
        )
        assert reply.status == 201, reply.body
        result = reply.body["result"]
        assert set(result) == RESPONSE_FIELDS
        assert result["config"] == public
        assert result["account_id"] == str(owner) and result["owner_type"] == "account"
        assert result["managed"] == "Unmanaged" and result["expires"] is None
        assert result["name"] == f"my_{config['type']}"
        assert reply.headers["Location"] == f"{BASE}/{owner}/{result['id']}"
        assert "s3cr3t" not in str(reply.body)
        got = await bed.call("GET", f"{BASE}/{owner}/{result['id']}", owner)
        assert got.result == result


async def test_generated_secret_is_returned_once(bed: Bed) -> None:
    owner = await bed.person()
    result = await bed.create(owner, {"type": "token"})
    secret = result["config"]["secret"]
    assert len(secret) >= 43  # 256 bits, base64url
    again = await bed.call("GET", f"{BASE}/{owner}/{result['id']}", owner)
    assert again.result["config"] == {"type": "token"}
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "c1"})
    assert len(client["config"]["client_secret"]) >= 43
    listed = await bed.call("GET", f"{BASE}/{owner}", owner)
    assert secret not in str(listed.body) and client["config"]["client_secret"] not in str(
        listed.body
    )


async def test_names(bed: Bed) -> None:
    owner = await bed.person()
    neither = await bed.create(owner, {"type": "secret", "secret": "x"})
    assert neither["name"] == neither["id"] == neither["fullname"]
    only_name = await bed.create(owner, {"type": "secret", "secret": "x"}, name="crm-key_1")
    assert only_name["fullname"] == "crm-key_1"
    only_full = await bed.create(
        owner, {"type": "secret", "secret": "x"}, fullname="CRM Key (prod)!"
    )
    assert only_full["name"] == "crm_key_prod" and only_full["fullname"] == "CRM Key (prod)!"
    dup = await bed.call(
        "POST",
        f"{BASE}/{owner}",
        owner,
        json={"name": "crm-key_1", "config": {"type": "secret", "secret": "x"}},
    )
    assert_problem(dup, 409, "crm-key_1")
    dup_generated = await bed.call(
        "POST",
        f"{BASE}/{owner}",
        owner,
        json={"fullname": "CRM KEY prod", "config": {"type": "secret", "secret": "x"}},
    )
    assert_problem(dup_generated, 409, "crm_key_prod")
    upper = await bed.call(
        "POST",
        f"{BASE}/{owner}",
        owner,
        json={"name": "CRM", "config": {"type": "secret", "secret": "x"}},
    )
    assert_problem(upper, 400, "name")
    # Another account may use the same name.
    other = await bed.person()
    assert (await bed.create(other, {"type": "secret", "secret": "x"}, name="crm-key_1"))[
        "name"
    ] == "crm-key_1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"config": {"type": "token"}, "owner_type": "integration"}, "integration"),
        ({"config": {"type": "token"}, "color": "red"}, "color"),
        ({"config": {"type": "token", "secret": "short"}}, "config.secret"),
        ({"config": {"type": "basic", "username": "u"}}, "secret"),
        ({"config": {"type": "kerberos"}}, "kerberos"),
        ({"config": {"type": "token", "extra": 1}}, "extra"),
        ({"name": "ok"}, "config is required"),
        ({"config": {"type": "token"}, "expires": "2030-01-01T00:00:00"}, "timezone"),
        ({"config": {"type": "token"}, "fullname": ""}, "fullname"),
    ],
)
async def test_create_refuses_bad_bodies(bed: Bed, body: dict[str, Any], fragment: str) -> None:
    owner = await bed.person()
    assert_problem(await bed.call("POST", f"{BASE}/{owner}", owner, json=body), 400, fragment)


async def test_bad_json_unknown_params_and_ids(bed: Bed) -> None:
    owner = await bed.person()
    reply = await bed.call(
        "POST",
        f"{BASE}/{owner}",
        owner,
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(reply, 400, "not JSON")
    reply = await bed.call(
        "POST", f"{BASE}/{owner}", owner, data="x=1", headers={"Content-Type": "text/plain"}
    )
    assert_problem(reply, 415, "application/json")  # the request guard: JSON bodies only
    assert_problem(
        await bed.call("GET", f"{BASE}/{owner}", owner, params={"colour": "red"}), 400, "colour"
    )
    assert_problem(await bed.call("GET", f"{BASE}/not-a-uuid", owner), 400, "ownerId")
    assert_problem(await bed.call("GET", f"{BASE}/{owner}/nope", owner), 400, "credentialId")
    assert_problem(await bed.call("GET", f"{BASE}/lookup/nope", owner), 400, "credentialId")
    assert_problem(
        await bed.call("GET", f"{BASE}/{owner}/{uuid.uuid4()}", owner), 404, "no credential"
    )
    assert_problem(await bed.call("POST", f"{BASE}/{owner}/{uuid.uuid4()}", owner, json={}), 405)
    reply = await bed.call("GET", f"{BASE}/{owner}")
    assert_problem(reply, 401, "no access token")
    assert "Bearer" in reply.headers["WWW-Authenticate"]


async def test_put_replaces_and_keeps_secrets_left_out(bed: Bed) -> None:
    owner = await bed.person()
    created = await bed.create(
        owner, {"type": "basic", "username": "crm", "secret": "first-password"}, name="crm"
    )
    url = f"{BASE}/{owner}/{created['id']}"
    body = dict(created, fullname="CRM (renamed)", name="crm2", expires="2031-01-01T00:00:00Z")
    body["config"] = {"type": "basic", "username": "crm-user"}
    reply = await bed.call("PUT", url, owner, json=body)
    result = reply.result
    assert result["fullname"] == "CRM (renamed)" and result["name"] == "crm2"
    assert result["config"] == {"type": "basic", "username": "crm-user"}
    assert result["expires"].startswith("2031-01-01T00:00:00")
    assert result["created_at"] == created["created_at"]
    assert result["updated_at"] > created["updated_at"]
    # The stored password was kept: Basic works with the new username and the old password.
    ok = await bed.call("GET", f"{BASE}/{owner}", auth=basic("crm-user", "first-password"))
    assert_problem(ok, 403, "credential")  # authenticated, but a credential manages none
    # A changed type needs its secrets.
    bad = dict(body, config={"type": "token"})
    reply = await bed.call("PUT", url, owner, json=dict(bad, config={"type": "secret"}))
    assert_problem(reply, 400, "secret")
    # A body inconsistent with the credential is a conflict (RFC 9110 §9.3.4).
    for field, value, status in (
        ("id", str(uuid.uuid4()), 409),
        ("managed", "Managed", 409),
        ("account_id", str(uuid.uuid4()), 409),
        ("owner_type", "integration", 400),
        ("integration_id", str(uuid.uuid4()), 409),
    ):
        reply = await bed.call("PUT", url, owner, json=dict(body, **{field: value}))
        assert_problem(reply, status, field)
    assert (await bed.call("GET", url, owner)).result == result
    missing = {k: v for k, v in body.items() if k != "name"}
    assert_problem(await bed.call("PUT", url, owner, json=missing), 400, "name")


async def test_delete_and_lookup(bed: Bed) -> None:
    owner = await bed.person()
    created = await bed.create(owner, {"type": "secret", "secret": "x"})
    looked = await bed.call("GET", f"{BASE}/lookup/{created['id']}", owner)
    assert looked.result == created
    reply = await bed.call("DELETE", f"{BASE}/{owner}/{created['id']}", owner)
    assert reply.status == 204 and reply.body is None
    assert_problem(await bed.call("GET", f"{BASE}/{owner}/{created['id']}", owner), 404)
    assert_problem(await bed.call("DELETE", f"{BASE}/{owner}/{created['id']}", owner), 404)
    assert_problem(await bed.call("GET", f"{BASE}/lookup/{created['id']}", owner), 404)


async def test_others_get_404_never_403(bed: Bed) -> None:
    owner, stranger = await bed.person("Owner"), await bed.person("Stranger")
    created = await bed.create(owner, {"type": "secret", "secret": "x"})
    one = f"{BASE}/{owner}/{created['id']}"
    for method, path, body in (
        ("GET", f"{BASE}/{owner}", None),
        ("POST", f"{BASE}/{owner}", {"config": {"type": "secret", "secret": "x"}}),
        ("GET", one, None),
        ("PUT", one, created),
        ("PATCH", one, [{"op": "replace", "path": "/fullname", "value": "x"}]),
        ("DELETE", one, None),
        ("GET", f"{BASE}/lookup/{created['id']}", None),
    ):
        reply = await bed.call(method, path, stranger, json=body)
        assert_problem(reply, 404)
    # Same answer as for an account that does not exist.
    missing = await bed.call("GET", f"{BASE}/{uuid.uuid4()}", stranger)
    assert_problem(missing, 404, "no account")
    assert (
        (await bed.call("GET", f"{BASE}/{owner}", stranger)).body["detail"].startswith("no account")
    )
    # The credential is untouched.
    assert (await bed.call("GET", one, owner)).result == created


async def test_admin_manages_any_account(bed: Bed) -> None:
    owner = await bed.person()
    admin = uuid.uuid4()
    reply = await bed.call(
        "POST",
        f"{BASE}/{owner}",
        admin,
        admin=True,
        json={"config": {"type": "secret", "secret": "x"}, "name": "by-admin"},
    )
    assert reply.status == 201, reply.body
    listed = await bed.call("GET", f"{BASE}/{owner}", admin, admin=True)
    assert [c["name"] for c in listed.result] == ["by-admin"]
    assert_problem(
        await bed.call("GET", f"{BASE}/{uuid.uuid4()}", admin, admin=True), 404, "no account"
    )


async def test_a_credential_manages_no_credentials_unless_admin(bed: Bed) -> None:
    owner = await bed.person()
    _, key = await bed.api_key(owner)
    reply = await bed.call("GET", f"{BASE}/{owner}", auth=f"Bearer {key}")
    assert_problem(reply, 403, "credential")
    # The admin account's API key may.
    _, admin_key = await bed.api_key(ADMIN_ACCOUNT)
    reply = await bed.call("GET", f"{BASE}/{owner}", auth=f"Bearer {admin_key}")
    assert reply.status == 200, reply.body


async def test_managed_credentials_are_changed_by_admins_only(bed: Bed) -> None:
    owner = await bed.person()
    from bridge.credentials.models import CredentialCreate, SecretCredential
    from bridge.credentials.service import Actor

    credential, _ = await bed.credentials.service.create(
        Actor(owner, is_admin=True),
        owner,
        CredentialCreate(config=SecretCredential(secret="x"), name="managed"),
        managed="Managed",
    )
    url = f"{BASE}/{owner}/{credential.id}"
    assert (await bed.call("GET", url, owner)).result["managed"] == "Managed"
    assert_problem(await bed.call("DELETE", url, owner), 403, "managed")
    patch = [{"op": "replace", "path": "/fullname", "value": "x"}]
    assert_problem(await bed.call("PATCH", url, owner, json=patch), 403, "managed")
    assert (await bed.call("PATCH", url, uuid.uuid4(), admin=True, json=patch)).result[
        "fullname"
    ] == "x"


async def test_expired_credentials_stay_readable(bed: Bed) -> None:
    owner = await bed.person()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    created = await bed.create(owner, {"type": "secret", "secret": "x"}, expires=past)
    assert (await bed.call("GET", f"{BASE}/{owner}/{created['id']}", owner)).result == created
    assert [c["id"] for c in (await bed.call("GET", f"{BASE}/{owner}", owner)).result] == [
        created["id"]
    ]


async def test_without_an_encryption_key_it_is_503(
    aiohttp_client: Any, db: Database, services: ApiServices, tmp_path: Path
) -> None:
    bed = await make_bed(aiohttp_client, db, services, tmp_path, with_key=False)
    owner = await bed.person()
    reply = await bed.call("POST", f"{BASE}/{owner}", owner, json={"config": {"type": "token"}})
    assert_problem(reply, 503, "credentials.key_file")
    # Nothing authenticates by credential either.
    reply = await bed.call("GET", f"{BASE}/{owner}", auth="Bearer some-api-key-0123456789")
    assert_problem(reply, 401, "API key")
