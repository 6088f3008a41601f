"""/pod/v1/companycert and /pod/v2/companycert/create: every operation and its errors."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.symphony_bed import CERTS, CREATE, PodBed
from tests.api.x509_kit import issue


def assert_error(status: int, body: object, expected: int, fragment: str = "") -> None:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"code", "message"}
    assert body["code"] == expected and fragment in body["message"], body


async def test_create_get_and_details(pod_bed: PodBed) -> None:
    ca = issue("Company CA", ca=True)
    detail = await pod_bed.store(ca, "USERSIGNING", "TRUSTED", name="company")
    admin_number = await pod_bed.number(pod_bed.admin)
    info = detail["companyCertInfo"]
    assert detail["companyCertAttributes"] == {
        "name": "company", "type": {"type": "USERSIGNING"}, "status": {"type": "TRUSTED"},
    }  # fmt: skip
    assert info["fingerPrint"] == ca.fingerprint and len(info["fingerPrint"]) == 64
    assert info["commonName"] == "Company CA" and "issuerFingerPrint" not in info
    assert info["expiryDate"] == int(ca.cert.not_valid_after_utc.timestamp()) * 1000
    assert info["updatedBy"] == admin_number and info["lastSeen"] == 0
    assert info["updatedAt"] > 0
    groups = {
        g["name"]: {a["name"]: a["value"] for a in g["attributes"]} for g in detail["certInfo"]
    }
    assert list(groups) == ["General", "Validity", "Public Key"]
    assert groups["General"]["Subject"] == "CN=Company CA,O=Test Company"
    assert groups["General"]["Signature Algorithm"] == "SHA256withECDSA"
    assert groups["Public Key"]["Algorithm"] == "EC" and groups["Public Key"]["Format"] == "X.509"
    assert groups["Validity"]["Not After"].endswith(str(ca.cert.not_valid_after_utc.year))

    # The leaf's issuer is known; the name defaults to the common name.
    leaf = issue("42", ca)
    stored = await pod_bed.store(leaf, "USER", "KNOWN")
    assert stored["companyCertInfo"]["issuerFingerPrint"] == ca.fingerprint
    assert stored["companyCertAttributes"]["name"] == "42"
    # Get, in either case of the fingerprint.
    for fp in (leaf.fingerprint, leaf.fingerprint.upper()):
        status, body = await pod_bed.call("GET", f"{CERTS}/{fp}/get", admin=True)
        assert status == 200 and body == stored


async def test_issuer_stored_second_is_found(pod_bed: PodBed) -> None:
    ca = issue("Late CA", ca=True)
    leaf = issue("7", ca)
    first = await pod_bed.store(leaf, "USER", "TRUSTED")
    assert "issuerFingerPrint" not in first["companyCertInfo"]
    await pod_bed.store(ca, "USERSIGNING", "TRUSTED")
    _, body = await pod_bed.call("GET", f"{CERTS}/{leaf.fingerprint}/get", admin=True)
    assert body["companyCertInfo"]["issuerFingerPrint"] == ca.fingerprint
    status, issued = await pod_bed.call("GET", f"{CERTS}/{ca.fingerprint}/issuedBy", admin=True)
    assert status == 200
    assert [c["companyCertInfo"]["fingerPrint"] for c in issued] == [leaf.fingerprint]
    assert set(issued[0]) == {"companyCertAttributes", "companyCertInfo"}


async def test_lists_skip_limit_types_and_pod_managed(pod_bed: PodBed) -> None:
    made = []
    for i, type_ in enumerate(["USERSIGNING", "USER", "OPERATIONSSIGNING", "OPERATIONSUSER"]):
        cert = issue(f"cert {i}")
        await pod_bed.store(cert, type_, "KNOWN")
        made.append(cert.fingerprint)

    async def fps(method: str, path: str, **kw: object) -> list[str]:
        status, body = await pod_bed.call(method, path, admin=True, **kw)  # type: ignore[arg-type]
        assert status == 200, body
        return [c["companyCertInfo"]["fingerPrint"] for c in body]

    assert await fps("GET", f"{CERTS}/list") == made
    assert await fps("GET", f"{CERTS}/list", params={"skip": "1", "limit": "2"}) == made[1:3]
    assert await fps("GET", f"{CERTS}/podmanaged/list") == made[2:]
    assert await fps("GET", f"{CERTS}/podmanaged/list", params={"skip": "1"}) == made[3:]
    body = [{"type": "USER"}, {"type": "OPERATIONSUSER"}]
    assert await fps("POST", f"{CERTS}/type/list", json=body) == [made[1], made[3]]
    assert await fps("POST", f"{CERTS}/type/list", json=body, params={"limit": "1"}) == [made[1]]
    assert_error(*await pod_bed.call("POST", f"{CERTS}/type/list", admin=True, json=[]), 400)
    assert_error(
        *await pod_bed.call("POST", f"{CERTS}/type/list", admin=True, json=[{"type": "X"}]),
        400,
    )
    assert_error(
        *await pod_bed.call("GET", f"{CERTS}/list", admin=True, params={"limit": "0"}),
        400,
        "limit",
    )
    assert_error(
        *await pod_bed.call("GET", f"{CERTS}/list", admin=True, params={"skip": "-1"}),
        400,
        "skip",
    )


async def test_update_and_delete(pod_bed: PodBed) -> None:
    cert = issue("changing")
    await pod_bed.store(cert, "USER", "KNOWN")
    other_admin = uuid.uuid4()
    status, body = await pod_bed.call(
        "POST", f"{CERTS}/{cert.fingerprint}/update", user=other_admin, admin=True,
        json={"name": "renamed", "status": {"type": "DISABLED"}},
    )  # fmt: skip
    assert status == 200 and body == {"format": "TEXT", "message": "OK"}
    _, detail = await pod_bed.call("GET", f"{CERTS}/{cert.fingerprint}/get", admin=True)
    assert detail["companyCertAttributes"] == {
        "name": "renamed", "type": {"type": "USER"}, "status": {"type": "DISABLED"},
    }  # fmt: skip
    assert detail["companyCertInfo"]["updatedBy"] == await pod_bed.number(other_admin)
    update = f"{CERTS}/{cert.fingerprint}/update"
    assert_error(*await pod_bed.call("POST", update, admin=True, json={}), 400, "nothing")
    assert_error(
        *await pod_bed.call("POST", update, admin=True, json={"status": {"type": "LOST"}}),
        400,
    )
    assert_error(
        *await pod_bed.call("POST", f"{CERTS}/{'0' * 64}/update", admin=True, json={"name": "x"}),
        404,
    )

    status, body = await pod_bed.call(
        "POST", f"{CERTS}/delete", admin=True, json={"id": cert.fingerprint}
    )
    assert status == 200 and body == {"format": "TEXT", "message": "OK"}
    assert_error(*await pod_bed.call("GET", f"{CERTS}/{cert.fingerprint}/get", admin=True), 404)
    assert_error(
        *await pod_bed.call("POST", f"{CERTS}/delete", admin=True, json={"id": cert.fingerprint}),
        404,
    )
    assert_error(
        *await pod_bed.call("POST", f"{CERTS}/delete", admin=True, json={"id": "abc"}), 400, "id"
    )


async def test_create_refusals(pod_bed: PodBed, caplog: pytest.LogCaptureFixture) -> None:
    cert = issue("dup")
    await pod_bed.store(cert, "USER", "TRUSTED")

    async def create(pem: str, **attributes: object) -> tuple[int, object]:
        attrs = {"type": {"type": "USER"}, "status": {"type": "TRUSTED"}} | attributes
        return await pod_bed.call(
            "POST", CREATE, admin=True, json={"pem": pem, "attributes": attrs}
        )

    assert_error(*await create(cert.pem), 409, "already stored")
    old = datetime.now(UTC) - timedelta(days=5)
    expired = issue("old", valid_from=old, valid_until=old + timedelta(days=1))
    assert_error(*await create(expired.pem), 400, "expired")
    assert_error(*await create("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"),
                 400, "not a well-formed PEM")  # fmt: skip
    assert_error(*await create("hello"), 400, "exactly one PEM certificate")
    assert_error(*await create(cert.pem + issue("two").pem), 400, "exactly one")
    secret = issue("keyed")
    with caplog.at_level(logging.DEBUG):
        status, body = await create(secret.pem + secret.key_pem)
        assert_error(status, body, 400, "private key")
        status, body = await create(secret.key_pem)
        assert_error(status, body, 400, "private key")
    key_body = secret.key_pem.splitlines()[1]
    assert key_body not in caplog.text and key_body not in str(body)
    assert_error(
        *await pod_bed.call("POST", CREATE, admin=True, json={"pem": cert.pem}),
        400,
        "attributes",
    )
    status, body = await pod_bed.call(
        "POST", CREATE, admin=True,
        json={"pem": issue("x").pem, "attributes": {"type": {"type": "USER"}}},
    )  # fmt: skip
    assert_error(status, body, 400, "status")


async def test_administrators_only(pod_bed: PodBed) -> None:
    user = uuid.uuid4()
    fp = "a" * 64
    calls = [
        ("GET", f"{CERTS}/list", None),
        ("POST", CREATE, {"pem": issue("x").pem, "attributes": {}}),
        ("POST", f"{CERTS}/delete", {"id": fp}),
        ("GET", f"{CERTS}/{fp}/get", None),
        ("POST", f"{CERTS}/{fp}/update", {"name": "x"}),
        ("GET", f"{CERTS}/{fp}/issuedBy", None),
        ("GET", f"{CERTS}/podmanaged/list", None),
        ("POST", f"{CERTS}/type/list", [{"type": "USER"}]),
    ]
    for method, path, body in calls:
        assert_error(*await pod_bed.call(method, path, user=user, json=body), 403, "entitlement")
        assert_error(*await pod_bed.call(method, path, json=body), 401)
    assert_error(*await pod_bed.call("GET", f"{CERTS}/xyz/get", admin=True), 400, "fingerPrint")


async def test_what_the_service_refuses_from_an_administrator(pod_bed: PodBed) -> None:
    """The rules live in the certificate service: a certificate is stored with a type and a
    status, a filter by type names one, an update changes something."""
    ca = issue("Rules CA", ca=True)
    only_type = {"pem": ca.pem, "attributes": {"type": {"type": "USER"}}}
    assert_error(
        *await pod_bed.call("POST", CREATE, admin=True, json=only_type), 400, "attributes.type"
    )
    assert_error(*await pod_bed.call("POST", f"{CERTS}/type/list", admin=True, json=[]), 400, "one")
    await pod_bed.store(ca, "USERSIGNING", "TRUSTED")
    update = f"{CERTS}/{ca.fingerprint}/update"
    assert_error(*await pod_bed.call("POST", update, admin=True, json={}), 400, "nothing")
