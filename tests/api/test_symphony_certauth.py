"""Certificate authentication over a real TLS listener: the chain cases, lastSeen, session
tokens on /pod and elsewhere, logout, status changes, and the pod certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import jwt
import pytest
from cryptography import x509

from tests.api.conftest import Api
from tests.api.symphony_bed import AUTHENTICATE, CERTS, LOGOUT, PodBed
from tests.api.x509_kit import issue


def assert_refused(status: int, body: object, fragment: str) -> None:
    assert status == 403, body
    assert isinstance(body, dict) and set(body) == {"code", "message"} and body["code"] == 403
    assert fragment in body["message"], body["message"]


async def test_trusted_issuer_authenticates_and_token_opens_pod_routes(pod_bed: PodBed) -> None:
    user_id, number = await pod_bed.user("Bot One")
    ca = issue("Bot CA", ca=True)
    await pod_bed.store(ca, "USERSIGNING", "TRUSTED")
    bot = issue(str(number), ca)

    status, body = await pod_bed.authenticate(bot)
    assert status == 200, body
    assert body["name"] == "sessionToken" and isinstance(body["token"], str)
    token = body["token"]

    # The pod certificate, and nothing else, verifies the token.
    for path in ("/pod/v1/podcert", "/sessionauth/v1/app/pod/certificate"):
        status, cert = await pod_bed.call("GET", path)
        assert status == 200 and set(cert) == {"certificate"}
        public = x509.load_pem_x509_certificate(cert["certificate"].encode()).public_key()
        claims = jwt.decode(token, public, algorithms=["RS256"])  # type: ignore[arg-type]
        assert claims["sub"] == str(user_id) and claims["uid"] == number

    status, listed = await pod_bed.call("GET", "/pod/v1/connection/list", token=token)
    assert status == 200 and listed == []
    # ...and as a Bearer token on the seed routes.
    async with pod_bed.session().get(
        pod_bed.url("/networking-api/v1/connections"),
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 200 and (await resp.json())["userId"] == str(user_id)

    # Logout revokes it everywhere.
    status, out = await pod_bed.call("POST", LOGOUT, token=token)
    assert status == 200 and out == {"message": "Logged out."}
    status, body = await pod_bed.call("GET", "/pod/v1/connection/list", token=token)
    assert status == 401 and body["code"] == 401 and "logged out" in body["message"]
    status, body = await pod_bed.call("POST", LOGOUT, token=token)
    assert status == 401


async def test_leaf_stored_as_user_trusted_or_known(pod_bed: PodBed) -> None:
    _, number = await pod_bed.user("Leaf User")
    for status_name in ("TRUSTED", "KNOWN"):
        leaf = issue(str(number))  # self-signed, stored itself
        await pod_bed.store(leaf, "USER", status_name)
        status, body = await pod_bed.authenticate(leaf)
        assert status == 200, (status_name, body)


async def test_refusals(pod_bed: PodBed) -> None:
    _, number = await pod_bed.user("Refused")
    ca = issue("Company CA", ca=True)
    await pod_bed.store(ca, "USERSIGNING", "TRUSTED")

    # A leaf that is disabled, though its issuer is trusted.
    disabled = issue(str(number), ca)
    await pod_bed.store(disabled, "USER", "DISABLED")
    assert_refused(*await pod_bed.authenticate(disabled), "disabled")

    # An expired leaf of a trusted issuer.
    old = datetime.now(UTC) - timedelta(days=10)
    expired = issue(str(number), ca, valid_from=old, valid_until=old + timedelta(days=1))
    assert_refused(*await pod_bed.authenticate(expired), "not valid now")

    # A common name that names nobody, and one that is a display name.
    assert_refused(*await pod_bed.authenticate(issue("999999999", ca)), "numeric id")
    assert_refused(*await pod_bed.authenticate(issue("Refused", ca)), "numeric id")

    # An issuer only KNOWN (not TRUSTED), and a USER-typed issuer: not a signing authority.
    known_ca = issue("Known CA", ca=True)
    await pod_bed.store(known_ca, "USERSIGNING", "KNOWN")
    assert_refused(*await pod_bed.authenticate(issue(str(number), known_ca)), "not trusted")

    # A revoked issuer refuses every certificate it issued, from the next authentication on.
    good = issue(str(number), ca)
    assert (await pod_bed.authenticate(good))[0] == 200
    await pod_bed.set_status(ca, "REVOKED")
    assert_refused(*await pod_bed.authenticate(good), "revoked")
    await pod_bed.set_status(ca, "TRUSTED")
    assert (await pod_bed.authenticate(good))[0] == 200


async def test_unknown_issuer_and_no_certificate(pod_bed: PodBed) -> None:
    _, number = await pod_bed.user("Stranger")
    stranger = issue(str(number), issue("Unknown CA", ca=True))
    # Unknown to every stored certificate: the TLS handshake itself refuses it (unknown CA).
    with pytest.raises(aiohttp.ClientError):
        await pod_bed.authenticate(stranger)
    # Known to the trust store but not trusted (deleted after a handshake could use it).
    other_ca = issue("Other CA", ca=True)
    await pod_bed.store(other_ca, "USERSIGNING", "TRUSTED")
    code, body = await pod_bed.call(
        "POST", f"{CERTS}/delete", admin=True, json={"id": other_ca.fingerprint}
    )
    assert code == 200, body
    assert_refused(*await pod_bed.authenticate(issue(str(number), other_ca)), "not trusted")
    # No certificate at all.
    status, body = await pod_bed.authenticate(None)
    assert status == 401 and "no client certificate" in body["message"]


async def test_last_seen_moves_on_use(pod_bed: PodBed) -> None:
    _, number = await pod_bed.user("Seen")
    ca = issue("Seen CA", ca=True)
    await pod_bed.store(ca, "USERSIGNING", "TRUSTED")
    leaf = issue(str(number), ca)
    await pod_bed.store(leaf, "USER", "KNOWN")

    async def last_seen() -> tuple[int, int]:
        seen = []
        for cert in (ca, leaf):
            _, body = await pod_bed.call("GET", f"{CERTS}/{cert.fingerprint}/get", admin=True)
            seen.append(body["companyCertInfo"]["lastSeen"])
        return seen[0], seen[1]

    assert await last_seen() == (0, 0)
    before = int(datetime.now(UTC).timestamp() * 1000)
    assert (await pod_bed.authenticate(leaf))[0] == 200
    first = await last_seen()
    assert all(value >= before - 1000 for value in first)
    assert (await pod_bed.authenticate(leaf))[0] == 200
    second = await last_seen()
    assert second[0] >= first[0] and second[1] >= first[1] and second != (0, 0)


async def test_plain_http_has_no_certificate(api: Api) -> None:
    resp = await api.client.post(AUTHENTICATE)
    body = await resp.json()
    assert resp.status == 401 and body["code"] == 401 and "TLS listener" in body["message"]
