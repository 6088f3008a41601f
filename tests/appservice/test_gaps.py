"""Transaction gaps against a homeserver that sends like Synapse's appservice scheduler."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.ops.bed import Bed, gap_state, message, poll, sample


class SynapseLikeSender:
    """The part of Synapse's appservice scheduler that matters here.

    Transactions are numbered 1, 2, 3, ... and kept until answered 2xx. Any other answer marks
    the service down; its recoverer then sends the oldest unsent transaction first
    (``get_oldest_unsent_txn``), then the next, until none is left. A stranded transaction is
    one created but never sent while the service was up.
    """

    def __init__(self, bed: Bed) -> None:
        self._bed = bed
        self.unsent: dict[int, list[dict[str, Any]]] = {}
        self.answers: list[tuple[int, int]] = []
        self.down = False

    def create(self, txn_id: int, events: list[dict[str, Any]]) -> None:
        self.unsent[txn_id] = events

    async def send(self, txn_id: int) -> int:
        status = await self._bed.put_txn(str(txn_id), self.unsent[txn_id])
        self.answers.append((txn_id, status))
        if 200 <= status < 300:
            del self.unsent[txn_id]
        else:
            self.down = True
        return status

    async def recover(self) -> None:
        while self.unsent:
            if await self.send(min(self.unsent)) != 200:
                return
        self.down = False


async def gap_states(conn: asyncpg.Connection) -> dict[int, str]:
    rows = await conn.fetch("SELECT missing_id, state FROM txn_gap ORDER BY id")
    return {r["missing_id"]: r["state"] for r in rows}


async def in_inbox(conn: asyncpg.Connection, event_id: str) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event_id))


async def test_a_late_transaction_fills_its_gap_without_a_forced_retry(
    bed: Bed, conn: asyncpg.Connection
) -> None:
    synapse = SynapseLikeSender(bed)
    for n in (1, 2, 3, 4, 5):
        synapse.create(n, [message(n)])
    for n in (1, 2, 4):
        assert await synapse.send(n) == 200
    assert await gap_states(conn) == {3: "open"}
    assert await synapse.send(3) == 200  # late, within the grace period
    assert await synapse.send(5) == 200
    assert synapse.answers == [(1, 200), (2, 200), (4, 200), (3, 200), (5, 200)]
    assert await gap_states(conn) == {3: "healed"}
    s = await bed.scrape()
    assert sample(s, "bridge_appservice_transaction_gaps_detected_total") == 1
    assert sample(s, "bridge_appservice_transaction_gaps_healed_total", how="late") == 1
    assert sample(s, "bridge_appservice_transaction_gap_retries_total") == 0
    assert sample(s, "bridge_appservice_transaction_gaps_open") == 0


SHORT_GRACE = [{"appservice__transaction_gaps": {"grace": 0.5, "check_interval": 0.1}}]


@pytest.mark.parametrize("overrides", SHORT_GRACE)
async def test_a_stranded_transaction_is_resent_after_a_forced_retry(
    bed: Bed, conn: asyncpg.Connection, overrides: dict[str, Any]
) -> None:
    synapse = SynapseLikeSender(bed)
    for n in (1, 2, 3, 4, 5):
        synapse.create(n, [message(n)])
    for n in (1, 2, 4):  # 3 is stranded: created, never sent
        assert await synapse.send(n) == 200

    await poll(gap_state(conn, 3, "due"))
    assert await synapse.send(5) == 503
    assert synapse.down
    await synapse.recover()

    assert synapse.answers == [(1, 200), (2, 200), (4, 200), (5, 503), (3, 200), (5, 200)]
    assert not synapse.unsent and not synapse.down
    assert await in_inbox(conn, "$ops3") and await in_inbox(conn, "$ops5")
    assert await gap_states(conn) == {3: "healed"}
    s = await bed.scrape()
    assert sample(s, "bridge_appservice_transaction_gaps_healed_total", how="resent") == 1
    assert sample(s, "bridge_appservice_transaction_gap_retries_total") == 1
    # Healed: the next transactions go through.
    synapse.create(6, [message(6)])
    assert await synapse.send(6) == 200


@pytest.mark.parametrize("overrides", SHORT_GRACE)
async def test_a_gap_that_a_forced_retry_does_not_fill_is_given_up_once(
    bed: Bed, conn: asyncpg.Connection, overrides: dict[str, Any]
) -> None:
    for n in (1, 3):
        assert await bed.put_txn(str(n), [message(n)]) == 200
    await poll(gap_state(conn, 2, "due"))
    assert await bed.put_txn("4", [message(4)]) == 503
    assert await bed.put_txn("4", [message(4)]) == 200  # the homeserver had nothing older
    await poll(gap_state(conn, 2, "given_up"))
    assert await bed.put_txn("5", [message(5)]) == 200  # never refused again for it
    s = await bed.scrape()
    assert sample(s, "bridge_appservice_transaction_gaps_given_up_total") == 1
    assert sample(s, "bridge_appservice_transaction_gap_retries_total") == 1


async def test_ids_starting_over_and_opaque_ids_are_not_gaps(
    bed: Bed, conn: asyncpg.Connection
) -> None:
    for n in (1, 2, 3):
        assert await bed.put_txn(str(n), [message(n)]) == 200
    # A homeserver restart (Synapse on SQLite): ids start over, with new bodies.
    for n, event in ((1, 11), (2, 12), (3, 13), (4, 14)):
        assert await bed.put_txn(str(n), [message(event)]) == 200
    assert await bed.put_txn("3", [message(13)]) == 200  # a plain resend
    assert await bed.put_txn("m1700000000.7", [message(20)]) == 200
    assert await gap_states(conn) == {}
    assert await conn.fetchval("SELECT high FROM txn_watch") == 4


@pytest.mark.parametrize("overrides", [{"appservice__transaction_gaps": {"enabled": False}}])
async def test_watching_can_be_switched_off(
    bed: Bed, conn: asyncpg.Connection, overrides: dict[str, Any]
) -> None:
    for n in (1, 5):
        assert await bed.put_txn(str(n), [message(n)]) == 200
    assert await gap_states(conn) == {}


async def test_a_huge_jump_starts_a_new_run(bed: Bed, conn: asyncpg.Connection) -> None:
    assert await bed.put_txn("1", [message(1)]) == 200
    assert await bed.put_txn("4271300021", [message(2)]) == 200
    assert await bed.put_txn("4271300023", [message(3)]) == 200
    assert await gap_states(conn) == {4271300022: "open"}


async def test_the_next_number_is_noted_by_the_statement_storing_it(
    bed: Bed, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case costs the watch no transaction of its own: only a first number, a
    skip (or a resend, a new run, a gap past its grace) goes through its full path."""
    from bridge.appservice.gaps import TxnGapWatch

    full_path: list[str] = []
    admit = TxnGapWatch.admit

    async def counted(self: TxnGapWatch, txn_id: str) -> None:
        full_path.append(txn_id)
        await admit(self, txn_id)

    monkeypatch.setattr(TxnGapWatch, "admit", counted)
    for n in (1, 2, 3, 5, 6, 7, 3):
        assert await bed.put_txn(str(n), [message(n)]) == 200
    assert full_path == ["1", "5", "3"]  # the first, the skip, the resend
    assert await conn.fetchval("SELECT high FROM txn_watch") == 7
    assert await gap_states(conn) == {4: "open"}
    for n in (1, 2, 3, 5, 6, 7):
        assert await in_inbox(conn, f"$ops{n}")
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 6  # the resend stored nothing
    assert await conn.fetchval("SELECT count(*) FROM appservice_txn") == 6
