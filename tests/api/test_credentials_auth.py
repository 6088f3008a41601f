"""Credentials as ways in: API keys, Basic, the client-credentials grant; expiry and deletion
taking effect at once; the bridge's signing keys, their rotation, publickey and JWKS."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from bridge.api.signing_keys import key_files, rotate
from tests.api.credentials_bed import ADMIN_ACCOUNT, BASE, Bed, basic

CONVERSATIONS = "/messaging-api/v1/conversations"
TOKEN = "/auth-api/token"


async def _as(bed: Bed, auth: str, path: str = CONVERSATIONS, **kw: Any) -> Any:
    return await bed.call("GET", path, auth=auth, **kw)


async def test_api_key_authenticates_as_its_account(bed: Bed) -> None:
    owner = await bed.person("Ann")
    _, key = await bed.api_key(owner)
    reply = await _as(bed, f"Bearer {key}")
    assert reply.status == 200, reply.body
    assert reply.body["userId"] == str(owner)
    # Wherever a token may be: the query parameter too.
    reply = await bed.call("GET", CONVERSATIONS, params={"access_token": key})
    assert reply.status == 200 and reply.body["userId"] == str(owner)


async def test_wrong_and_near_miss_keys_are_refused(bed: Bed) -> None:
    owner = await bed.person()
    _, key = await bed.api_key(owner)
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), key + "x", "x" * 43):
        reply = await _as(bed, f"Bearer {wrong}")
        assert reply.status == 401 and "unknown API key" in reply.body["message"]


async def test_api_key_expiry_and_deletion_take_effect_at_once(bed: Bed) -> None:
    owner = await bed.person()
    credential_id, key = await bed.api_key(owner)
    url = f"{BASE}/{owner}/{credential_id}"
    assert (await _as(bed, f"Bearer {key}")).status == 200
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    patch = [{"op": "replace", "path": "/expires", "value": past}]
    assert (await bed.call("PATCH", url, owner, json=patch)).status == 200
    reply = await _as(bed, f"Bearer {key}")
    assert reply.status == 401 and "expired" in reply.body["message"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    patch = [{"op": "replace", "path": "/expires", "value": future}]
    assert (await bed.call("PATCH", url, owner, json=patch)).status == 200
    assert (await _as(bed, f"Bearer {key}")).status == 200
    assert (await bed.call("DELETE", url, owner)).status == 204
    reply = await _as(bed, f"Bearer {key}")
    assert reply.status == 401 and "unknown API key" in reply.body["message"]


async def test_other_credential_types_are_not_api_keys(bed: Bed) -> None:
    owner = await bed.person()
    await bed.create(owner, {"type": "secret", "secret": "a-plain-secret-of-length"})
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "c1"})
    for candidate in ("a-plain-secret-of-length", client["config"]["client_secret"]):
        assert (await _as(bed, f"Bearer {candidate}")).status == 401


async def test_basic_authenticates_as_its_account(bed: Bed) -> None:
    owner = await bed.person()
    created = await bed.create(owner, {"type": "basic", "username": "crm", "secret": "pa:ss word"})
    reply = await _as(bed, basic("crm", "pa:ss word"))
    assert reply.status == 200 and reply.body["userId"] == str(owner)
    for auth in (
        basic("crm", "pa:ss wore"),
        basic("crn", "pa:ss word"),
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ):
        reply = await _as(bed, auth)
        assert reply.status == 401, auth
    await bed.call("DELETE", f"{BASE}/{owner}/{created['id']}", owner)
    assert (await _as(bed, basic("crm", "pa:ss word"))).status == 401


async def test_same_basic_username_in_two_accounts(bed: Bed) -> None:
    ann, bob = await bed.person("Ann"), await bed.person("Bob")
    await bed.create(ann, {"type": "basic", "username": "svc", "secret": "ann-password"})
    await bed.create(bob, {"type": "basic", "username": "svc", "secret": "bob-password"})
    assert (await _as(bed, basic("svc", "ann-password"))).body["userId"] == str(ann)
    assert (await _as(bed, basic("svc", "bob-password"))).body["userId"] == str(bob)


async def test_admin_credentials_act_for_others(bed: Bed) -> None:
    owner = await bed.person()
    _, admin_key = await bed.api_key(ADMIN_ACCOUNT)
    reply = await _as(bed, f"Bearer {admin_key}", params={"asUserId": str(owner)})
    assert reply.status == 200 and reply.body["userId"] == str(owner)
    _, key = await bed.api_key(owner)
    reply = await _as(bed, f"Bearer {key}", params={"asUserId": str(ADMIN_ACCOUNT)})
    assert reply.status == 403


async def _token(bed: Bed, **kw: Any) -> Any:
    return await bed.call("POST", TOKEN, **kw)


async def test_client_credentials_grant_form_and_basic(bed: Bed) -> None:
    owner = await bed.person()
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "crm-client"})
    secret = client["config"]["client_secret"]
    by_form = await _token(
        bed,
        data={
            "grant_type": "client_credentials",
            "client_id": "crm-client",
            "client_secret": secret,
        },
    )
    by_basic = await _token(
        bed, data={"grant_type": "client_credentials"}, auth=basic("crm-client", secret)
    )
    for reply in (by_form, by_basic):
        assert reply.status == 200, reply.body
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.body["token_type"] == "Bearer" and reply.body["expires_in"] == 3600
        token = reply.body["access_token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256"
        # Verifiable with the published key.
        keys = (await bed.call("GET", "/.well-known/jwks.json")).body["keys"]
        jwk = next(k for k in keys if k["kid"] == header["kid"])
        claims = jwt.decode(token, RSAAlgorithm.from_jwk(jwk), algorithms=["RS256"])  # type: ignore[arg-type]
        assert claims["sub"] == str(owner) and claims["cid"] == client["id"]
        # The REST API accepts it like any other token.
        used = await _as(bed, f"Bearer {token}")
        assert used.status == 200 and used.body["userId"] == str(owner)
    # A client token cannot manage credentials (its account is no admin).
    reply = await bed.call("GET", f"{BASE}/{owner}", auth=f"Bearer {by_form.body['access_token']}")
    assert reply.status == 403
    # Deleting the client ends its tokens at once.
    await bed.call("DELETE", f"{BASE}/{owner}/{client['id']}", owner)
    reply = await _as(bed, f"Bearer {by_form.body['access_token']}")
    assert reply.status == 401 and "gone or expired" in reply.body["message"]


async def test_client_token_of_an_admin_account(bed: Bed) -> None:
    client = await bed.create(ADMIN_ACCOUNT, {"type": "oauth_client", "client_id": "ops"})
    reply = await _token(
        bed,
        data={"grant_type": "client_credentials"},
        auth=basic("ops", client["config"]["client_secret"]),
    )
    token = reply.body["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["admin"]
    other = await bed.person()
    assert (await bed.call("GET", f"{BASE}/{other}", auth=f"Bearer {token}")).status == 200


async def test_expired_client_gets_no_token(bed: Bed) -> None:
    owner = await bed.person()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "old"}, expires=past)
    reply = await _token(
        bed,
        data={"grant_type": "client_credentials"},
        auth=basic("old", client["config"]["client_secret"]),
    )
    assert reply.status == 401 and reply.body["error"] == "invalid_client"


async def test_token_endpoint_errors_are_rfc6749(bed: Bed) -> None:
    owner = await bed.person()
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "c"})
    secret = client["config"]["client_secret"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": {"client_id": "c", "client_secret": secret}}, 400, "invalid_request"),
        (
            {"data": {"grant_type": "password", "client_id": "c", "client_secret": secret}},
            400,
            "unsupported_grant_type",
        ),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        (
            {
                "data": {
                    "grant_type": "client_credentials",
                    "client_id": "c",
                    "client_secret": "wrong",
                }
            },
            401,
            "invalid_client",
        ),
        (
            {
                "data": {"grant_type": "client_credentials", "client_id": "c"},
                "auth": basic("c", secret),
            },
            400,
            "invalid_request",
        ),
        (
            {"json": {"grant_type": "client_credentials"}, "auth": basic("c", secret)},
            400,
            "invalid_request",
        ),
        ({"data": {"grant_type": "client_credentials"}, "auth": "Bearer x"}, 401, "invalid_client"),
        (
            {
                "data": [
                    ("grant_type", "client_credentials"),
                    ("grant_type", "client_credentials"),
                ],
                "auth": basic("c", secret),
            },
            400,
            "invalid_request",
        ),
    ]
    for kw, status, error in cases:
        reply = await _token(bed, **kw)
        assert reply.status == status, (kw, reply.body)
        assert reply.body["error"] == error and reply.body["error_description"]
        assert set(reply.body) == {"error", "error_description"}
        assert secret not in str(reply.body)
        if status == 401:
            assert reply.headers["WWW-Authenticate"].startswith("Basic")


async def test_signing_key_rotation_keeps_old_tokens_valid(bed: Bed) -> None:
    owner = await bed.person()
    client = await bed.create(owner, {"type": "oauth_client", "client_id": "c"})
    auth = basic("c", client["config"]["client_secret"])
    old = (await _token(bed, data={"grant_type": "client_credentials"}, auth=auth)).body[
        "access_token"
    ]
    old_kid = jwt.get_unverified_header(old)["kid"]
    key_dir = bed.config.api.jwt.key_dir
    assert key_dir is not None
    new_kid, retired = rotate(None, key_dir, keep=2)
    assert new_kid != old_kid and retired == []
    new = (await _token(bed, data={"grant_type": "client_credentials"}, auth=auth)).body[
        "access_token"
    ]
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    for token in (old, new):
        assert (await _as(bed, f"Bearer {token}")).status == 200
    # publickey: the signing key by default, any trusted key by keyId.
    current = (await bed.call("GET", "/auth-api/publickey")).body
    assert current["keyId"] == new_kid
    previous = (await bed.call("GET", "/auth-api/publickey", params={"keyId": old_kid})).body
    assert previous["keyId"] == old_kid and previous["keyData"].startswith("-----BEGIN PUBLIC KEY")
    jwt.decode(old, previous["keyData"], algorithms=["RS256"])
    kids = [k["kid"] for k in (await bed.call("GET", "/.well-known/jwks.json")).body["keys"]]
    assert kids == [new_kid, old_kid]
    # Two more rotations retire the first key: its tokens stop verifying.
    rotate(None, key_dir, keep=2)
    _, retired = rotate(None, key_dir, keep=2)
    assert len(key_files(key_dir)) == 2 and retired
    reply = await _as(bed, f"Bearer {old}")
    assert reply.status == 401
    assert (await bed.call("GET", "/auth-api/publickey", params={"keyId": old_kid})).status == 404


def test_rotation_with_a_private_key_file(tmp_path: Path) -> None:
    from bridge.api.signing_keys import SigningKeys
    from bridge.own_key import create_private_key_file

    key_file, key_dir = tmp_path / "signing.pem", tmp_path / "older"
    create_private_key_file(key_file)
    keys = SigningKeys(key_file, key_dir)
    first = keys.current().kid
    new_kid, _ = rotate(key_file, key_dir, keep=3)
    assert keys.current().kid == new_kid and first in keys.trusted()
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in key_files(key_dir))


async def test_tokens_by_foreign_keys_with_a_known_kid_fail(bed: Bed) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    kid = (await bed.call("GET", "/auth-api/publickey")).body["keyId"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "exp": now + 60}, forger, algorithm="RS256", headers={"kid": kid}
    )
    reply = await _as(bed, f"Bearer {token}")
    assert reply.status == 401 and "signature" in reply.body["message"]
