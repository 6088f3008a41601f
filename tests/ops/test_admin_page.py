"""The /admin status page in a real browser: it shows a seeded state, and Replay works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bridge.app import CONTEXT, DATABASE
from bridge.ops.admin_auth import AdminAuth
from tests.ops.bed import Bed, gap_state, message, poll
from tests.ops.browser import chromium, ensure_chromium

#: The screenshot the test leaves behind for a human to look at (ignored by git).
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin-status.png"


@pytest.fixture(scope="session")
def browser_available() -> Iterator[None]:
    problem = ensure_chromium()
    if problem is not None:
        pytest.skip(problem)
    yield


async def dead_letter_id(conn: asyncpg.Connection, event_id: str) -> int | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT id FROM dead_letter WHERE event_id = $1", event_id
    )


@pytest.mark.usefixtures("browser_available")
async def test_status_page_shows_the_state_and_replays_a_dead_letter(
    bed: Bed, conn: asyncpg.Connection
) -> None:
    # Seeded state: one event processed, one failing until dead, one malformed (dead at
    # intake), a held-back event pending, and a skipped transaction id (11).
    bed.flaky.broken.add("$ops2")
    assert await bed.put_txn("10", [message(1), message(2), {"type": "no ids"}]) == 200
    await poll(lambda: dead_letter_id(conn, "$ops2"))
    await conn.execute(
        "INSERT INTO inbox_lane (lane, not_before) VALUES ('!held:localhost', now() + interval '1 hour')"
    )
    assert await bed.put_txn("12", [message(3, room="!held:localhost")]) == 200
    await poll(gap_state(conn, 11, "open"))
    letter = await dead_letter_id(conn, "$ops2")

    app = bed.app
    secret = await AdminAuth(app[DATABASE], app[CONTEXT].config.admin).create_link_secret()
    link = str(bed.client.make_url(f"/admin/login?token={secret}"))

    async with chromium() as page:
        await page.goto(link)
        assert (await page.evaluate("location.pathname")) == "/admin"
        assert await page.text("h1") == "Bridge status"
        assert await page.text("#inbox-pending") == "1"
        assert await page.text("#inbox-retrying") == "0"
        assert await page.text("#outbox-pending") == "0"
        assert await page.text("#dead-letters-waiting") == "2"
        assert "12, 1 event(s)" in (await page.text("#last-txn") or "")
        gaps = await page.text("#gaps") or ""
        assert "11" in gaps and "open" in gaps
        row = f"#dead-letter-{letter}"
        assert "handler broken for $ops2" in (await page.text(row) or "")
        assert "m.room.message from @alice:localhost: hello 2" in (await page.text(row) or "")
        assert await page.text(f"{row} .status") == "waiting"

        bed.flaky.broken.clear()  # the cause is fixed; replay the event
        await page.click(f"{row} button.replay")
        assert f"Dead letter {letter}: replayed" in (await page.text("#notice") or "")

        async def shown_processed() -> bool:
            await page.goto(str(bed.client.make_url("/admin")))
            return await page.text(f"{row} .status") == "replayed; now processed"

        await poll(shown_processed, within=30)
        assert "$ops2" in bed.flaky.processed
        assert await page.text("#dead-letters-waiting") == "1"

        png = await page.screenshot(SCREENSHOT)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        # The replayed letter offers no second Replay; the other one still does.
        assert await page.evaluate(f"document.querySelector('{row} button.replay')") is None
        assert await page.evaluate("document.querySelectorAll('button.replay').length") == 1
