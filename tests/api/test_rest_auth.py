"""JWT authentication of the REST API over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from bridge.api import ApiServices
from bridge.api.app import api_apps
from bridge.api.keys import thumbprint
from bridge.config import ConfigError
from bridge.db.database import Database
from tests.api.conftest import (
    SECRET,
    TOKEN_NAME,
    Api,
    RsaKey,
    api_config,
    assert_error,
    claims,
    hs_token,
    rs_token,
    serve,
    write,
)

CONVERSATIONS = "/messaging-api/v1/conversations"


async def get(
    api: Api, token: str | None = None, path: str = CONVERSATIONS, **kw: Any
) -> tuple[int, Any]:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.call("GET", path, headers=headers, **kw)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- missing and bad tokens ---------------------------------------------------------------------


async def test_missing_token_is_401_with_the_network_error_body(api: Api) -> None:
    resp = await api.client.get(CONVERSATIONS)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(resp.status, await resp.json(), 401, "no access token")


async def test_valid_token_is_accepted(api: Api) -> None:
    status, body = await get(api, hs_token(uuid.uuid4()))
    assert status == 200, body
    assert body["status"] == "OK"


async def test_expired_token(api: Api) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(claims(uuid.uuid4(), iat=past - 60, exp=past), SECRET, algorithm="HS256")
    assert_error(*await get(api, token), 401, "expired")


async def test_expired_within_leeway_is_accepted(api: Api) -> None:
    now = int(time.time())
    token = jwt.encode(claims(uuid.uuid4(), exp=now - 5), SECRET, algorithm="HS256")
    status, _ = await get(api, token)
    assert status == 200


async def test_token_without_exp(api: Api) -> None:
    token = jwt.encode({"sub": str(uuid.uuid4())}, SECRET, algorithm="HS256")
    assert_error(*await get(api, token), 401, "exp")


async def test_wrong_secret(api: Api) -> None:
    token = hs_token(uuid.uuid4(), secret="another-secret-that-is-long-enough!!")
    assert_error(*await get(api, token), 401, "signature")


async def test_alg_none_is_refused(api: Api) -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(uuid.uuid4()))}."
    assert_error(*await get(api, token), 401, "'none'")


async def test_garbage_token(api: Api) -> None:
    assert_error(*await get(api, "not.a.jwt"), 401, "malformed")


async def test_subject_must_be_a_uuid(api: Api) -> None:
    assert_error(*await get(api, hs_token("alice")), 401, "sub")


async def test_unconfigured_secret_refuses_every_token(
    aiohttp_client: Any, db: Database, services: ApiServices
) -> None:
    client = await serve(aiohttp_client, api_config(algorithm="HS256"), db, services)
    api = Api(client, db, services)
    assert_error(*await get(api, hs_token(uuid.uuid4())), 401, "not configured")


# --- audience and issuer ------------------------------------------------------------------------


@pytest.fixture
async def strict(aiohttp_client: Any, db: Database, services: ApiServices) -> Api:
    config = api_config(
        algorithm="HS256", secret=SECRET, audience="bridge-api", issuer="https://idp.example"
    )
    return Api(await serve(aiohttp_client, config, db, services), db, services)


async def test_audience_and_issuer_checked(strict: Api) -> None:
    sub = uuid.uuid4()
    good = hs_token(sub, aud="bridge-api", iss="https://idp.example")
    assert (await get(strict, good))[0] == 200
    assert_error(
        *await get(strict, hs_token(sub, aud="other", iss="https://idp.example")), 401, "audience"
    )
    assert_error(
        *await get(strict, hs_token(sub, aud="bridge-api", iss="https://evil")), 401, "issuer"
    )
    assert_error(*await get(strict, hs_token(sub, iss="https://idp.example")), 401, "aud")


# --- RS256: PEM, JWKS, rotation, confusion --------------------------------------------------------


async def rs_api(
    aiohttp_client: Any, db: Database, services: ApiServices, **jwt_config: Any
) -> Api:
    config = api_config(algorithm="RS256", **{k: str(v) for k, v in jwt_config.items()})
    return Api(await serve(aiohttp_client, config, db, services), db, services)


async def test_rs256_public_key_file(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    key, other = rsa_keys
    api = await rs_api(
        aiohttp_client, db, services, public_key_file=write(tmp_path / "pub.pem", key.public_pem)
    )
    assert (await get(api, rs_token(uuid.uuid4(), key)))[0] == 200
    assert_error(*await get(api, rs_token(uuid.uuid4(), other)), 401, "signature")


async def test_hs256_token_signed_with_the_public_key_is_refused(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    """Algorithm confusion: the public key used as an HMAC secret."""
    key, _ = rsa_keys
    api = await rs_api(
        aiohttp_client, db, services, public_key_file=write(tmp_path / "pub.pem", key.public_pem)
    )
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64(claims(uuid.uuid4()))
    signature = hmac.new(key.public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert_error(*await get(api, forged), 401, "'HS256' is not accepted")


async def test_rs256_token_refused_when_hs256_is_configured(
    api: Api, rsa_keys: tuple[RsaKey, RsaKey]
) -> None:
    assert_error(*await get(api, rs_token(uuid.uuid4(), rsa_keys[0])), 401, "'RS256'")


def jwks(*entries: tuple[RsaKey, str]) -> str:
    keys = []
    for key, kid in entries:
        jwk = RSAAlgorithm.to_jwk(key.private.public_key(), as_dict=True)
        keys.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})
    return json.dumps({"keys": keys})


def rewrite(path: Path, text: str) -> None:
    """Replace the file as a deploy would (new inode), with a later mtime."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    stat = path.stat()
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    staged.replace(path)


async def test_jwks_kid_selection_and_rotation_without_restart(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    old, new = rsa_keys
    path = write(tmp_path / "jwks.json", jwks((old, "k1")))
    api = await rs_api(aiohttp_client, db, services, jwks_file=path)
    sub = uuid.uuid4()
    assert (await get(api, rs_token(sub, old, kid="k1")))[0] == 200
    assert_error(*await get(api, rs_token(sub, new, kid="k2")), 401, "unknown key")
    # The key under a kid it does not have fails the signature, not the lookup.
    assert_error(*await get(api, rs_token(sub, new, kid="k1")), 401, "signature")

    rewrite(path, jwks((old, "k1"), (new, "k2")))
    assert (await get(api, rs_token(sub, new, kid="k2")))[0] == 200
    assert (await get(api, rs_token(sub, old, kid="k1")))[0] == 200
    assert_error(*await get(api, rs_token(sub, old)), 401, "no kid")

    rewrite(path, jwks((new, "k2")))
    assert_error(*await get(api, rs_token(sub, old, kid="k1")), 401, "unknown key")
    assert (await get(api, rs_token(sub, new, kid="k2")))[0] == 200
    assert (await get(api, rs_token(sub, new)))[0] == 200  # one key: kid optional

    rewrite(path, "{ not json")  # a broken deploy keeps the last good key set
    assert (await get(api, rs_token(sub, new, kid="k2")))[0] == 200


async def test_public_key_file_is_reloaded(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    old, new = rsa_keys
    path = write(tmp_path / "pub.pem", old.public_pem)
    api = await rs_api(aiohttp_client, db, services, public_key_file=path)
    assert (await get(api, rs_token(uuid.uuid4(), old)))[0] == 200
    rewrite(path, new.public_pem.decode())
    assert (await get(api, rs_token(uuid.uuid4(), new)))[0] == 200
    assert_error(*await get(api, rs_token(uuid.uuid4(), old)), 401, "signature")


async def test_private_key_verifies_its_own_tokens(
    aiohttp_client: Any,
    db: Database,
    services: ApiServices,
    tmp_path: Path,
    rsa_keys: tuple[RsaKey, RsaKey],
) -> None:
    key, other = rsa_keys
    api = await rs_api(
        aiohttp_client, db, services, private_key_file=write(tmp_path / "key.pem", key.private_pem)
    )
    kid = thumbprint(key.private.public_key())
    assert (await get(api, rs_token(uuid.uuid4(), key, kid=kid)))[0] == 200
    assert_error(*await get(api, rs_token(uuid.uuid4(), other, kid=kid)), 401, "signature")


def test_bad_key_configuration_fails_fast(
    tmp_path: Path, db: Database, services: ApiServices
) -> None:
    with pytest.raises(ConfigError) as missing:
        api_apps(api_config(algorithm="RS256"), db, services)
    assert missing.value.key == "api.jwt.public_key_file"
    broken = write(tmp_path / "jwks.json", "[]")
    with pytest.raises(ConfigError) as bad:
        api_apps(api_config(algorithm="RS256", jwks_file=str(broken)), db, services)
    assert bad.value.key == "api.jwt.jwks_file"
    with pytest.raises(ConfigError) as absent:
        api_apps(
            api_config(algorithm="RS256", public_key_file=str(tmp_path / "nope.pem")), db, services
        )
    assert absent.value.key == "api.jwt.public_key_file"


# --- where the token is looked for ----------------------------------------------------------------


async def test_token_locations_in_order(api: Api) -> None:
    good, bad = hs_token(uuid.uuid4()), "bad.token.value"
    client = api.client
    # Query first: a good query token wins over a bad bearer, and a bad one loses to nothing.
    resp = await client.get(
        CONVERSATIONS, params={"access_token": good}, headers={"Authorization": f"Bearer {bad}"}
    )
    assert resp.status == 200
    resp = await client.get(
        CONVERSATIONS, params={"access_token": bad}, headers={"Authorization": f"Bearer {good}"}
    )
    assert resp.status == 401
    # Then the bearer, then the named header, then the cookie.
    resp = await client.get(
        CONVERSATIONS, headers={"Authorization": f"Bearer {good}", TOKEN_NAME: bad}
    )
    assert resp.status == 200
    resp = await client.get(
        CONVERSATIONS, headers={TOKEN_NAME: good, "Cookie": f"{TOKEN_NAME}={bad}"}
    )
    assert resp.status == 200
    resp = await client.get(CONVERSATIONS, headers={"Cookie": f"{TOKEN_NAME}={good}"})
    assert resp.status == 200
    # A non-bearer Authorization counts as no token.
    resp = await client.get(CONVERSATIONS, headers={"Authorization": f"Basic {good}"})
    assert resp.status == 401


async def test_session_token_header_only_on_symphony_routes(api: Api) -> None:
    token = hs_token(uuid.uuid4())
    resp = await api.client.get("/pod/v1/connection/list", headers={"sessionToken": token})
    assert resp.status == 200
    resp = await api.client.get(CONVERSATIONS, headers={"sessionToken": token})
    assert resp.status == 401


# --- the token's user ---------------------------------------------------------------------------


async def test_user_created_on_first_call_and_renamed(api: Api) -> None:
    sub = uuid.uuid4()
    assert (await get(api, hs_token(sub, name="Ann Smith")))[0] == 200
    async with api.db.transaction() as conn:
        assert (await api.services.users.get(conn, sub)).display_name == "Ann Smith"
    assert (await get(api, hs_token(sub, name="Ann Jones")))[0] == 200
    assert (await get(api, hs_token(sub)))[0] == 200  # no name: keeps the last one
    async with api.db.transaction() as conn:
        assert (await api.services.users.get(conn, sub)).display_name == "Ann Jones"


async def test_acting_for_another_user_needs_admin(api: Api) -> None:
    ann, bob = uuid.uuid4(), await api.person("Bob")
    status, body = await api.call("GET", CONVERSATIONS, ann, params={"asUserId": str(bob)})
    assert_error(status, body, 403, "administrators")
    status, body = await api.call(
        "GET", CONVERSATIONS, ann, params={"asUserId": str(bob)}, admin=True
    )
    assert status == 200 and body["userId"] == str(bob)
    status, body = await api.call(
        "GET", CONVERSATIONS, ann, params={"asUserId": str(uuid.uuid4())}, admin=True
    )
    assert_error(status, body, 404, "asUserId")
    # `role: admin` counts as well.
    token = hs_token(ann, role="admin")
    status, body = await get(api, token, params={"asUserId": str(bob)})
    assert status == 200 and body["userId"] == str(bob)
