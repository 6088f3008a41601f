"""Who gets in to /admin: one-time links, admin JWTs, sessions, and CSRF on every form."""

from __future__ import annotations

import re
import time
import uuid

import jwt
from aiohttp.test_utils import TestClient

from bridge.app import CONTEXT, DATABASE
from bridge.ops.admin_auth import SESSION_COOKIE, AdminAuth
from tests.ops.bed import JWT_SECRET, Bed, message, poll


def token(*, admin: bool) -> str:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 300}
    if admin:
        claims["roles"] = ["admin"]
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def login(bed: Bed) -> str:
    """Open a session through a one-time link; return the page's CSRF token."""
    secret = await AdminAuth(bed.app[DATABASE], bed.app[CONTEXT].config.admin).create_link_secret()
    resp = await bed.client.get(f"/admin/login?token={secret}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin"
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/admin"
    page = await bed.client.get("/admin")
    assert page.status == 200
    found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert found
    return found.group(1)


async def test_no_session_no_page(bed: Bed) -> None:
    resp = await bed.client.get("/admin")
    assert resp.status == 401
    assert "text/html" in resp.headers["Content-Type"]
    assert "bridge admin-link" in await resp.text()
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_a_link_works_once(bed: Bed) -> None:
    secret = await AdminAuth(bed.app[DATABASE], bed.app[CONTEXT].config.admin).create_link_secret()
    first = await bed.client.get(f"/admin/login?token={secret}", allow_redirects=False)
    assert first.status == 303
    again = await bed.client.get(f"/admin/login?token={secret}", allow_redirects=False)
    assert again.status == 401
    wrong = await bed.client.get("/admin/login?token=guess", allow_redirects=False)
    assert wrong.status == 401


async def test_forms_need_the_sessions_csrf_token(bed: Bed) -> None:
    bed.flaky.broken.add("$ops1")
    await bed.put_txn("1", [message(1)])

    async def dead() -> object:
        return await bed.client.app[DATABASE].pool.fetchval("SELECT id FROM dead_letter")

    await poll(dead)
    letter = await dead()
    csrf = await login(bed)
    forged = await bed.client.post(f"/admin/dead-letters/{letter}/drop", data={"csrf": "x" * 32})
    assert forged.status == 403
    missing = await bed.client.post(f"/admin/dead-letters/{letter}/drop")
    assert missing.status == 403
    assert await dead() == letter
    done = await bed.client.post(
        f"/admin/dead-letters/{letter}/drop", data={"csrf": csrf}, allow_redirects=False
    )
    assert done.status == 303 and "dropped" in done.headers["Location"]
    assert await dead() is None


async def test_admin_jwt_as_bearer_or_exchanged_for_a_session(bed: Bed) -> None:
    bearer = await bed.client.get(
        "/admin", headers={"Authorization": f"Bearer {token(admin=True)}"}
    )
    assert bearer.status == 200
    not_admin = await bed.client.get(
        "/admin", headers={"Authorization": f"Bearer {token(admin=False)}"}
    )
    assert not_admin.status == 403
    exchanged = await bed.client.get(
        f"/admin?access_token={token(admin=True)}", allow_redirects=False
    )
    assert exchanged.status == 303 and exchanged.headers["Location"] == "/admin"
    assert SESSION_COOKIE in exchanged.cookies
    assert (await bed.client.get("/admin")).status == 200


async def test_logout_ends_the_session(bed: Bed) -> None:
    csrf = await login(bed)
    client: TestClient = bed.client
    (secret,) = [c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE]
    out = await client.post("/admin/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    client.session.cookie_jar.clear()
    # The old cookie, sent again, opens nothing: the session is gone on the server too.
    again = await client.get("/admin", headers={"Cookie": f"{SESSION_COOKIE}={secret}"})
    assert again.status == 401
