"""Listing credentials: limit, start_after at depth, multi-field order, each filter operator,
and the keyset query using an index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.credentials.listing import ListParameters, parse_list_query
from tests.api.credentials_bed import BASE, Bed
from tests.api.test_credentials_routes import assert_problem

NOW = datetime(2030, 1, 1, tzinfo=UTC)


async def _seed(bed: Bed, owner: uuid.UUID, count: int) -> list[dict[str, Any]]:
    """``count`` credentials named c000.., expiring on two days alternately (some never),
    of alternating types."""
    made = []
    for i in range(count):
        expires = None if i % 3 == 0 else (NOW + timedelta(days=i % 2)).isoformat()
        config = (
            {"type": "secret", "secret": "x"}
            if i % 2
            else {"type": "aws", "access_key_id": f"A{i}", "secret_access_key": "s"}
        )
        made.append(
            await bed.create(owner, config, name=f"c{i:03d}", fullname=f"Cred {i}", expires=expires)
        )
    return made


async def _names(bed: Bed, owner: uuid.UUID, **params: Any) -> list[str]:
    reply = await bed.call("GET", f"{BASE}/{owner}", owner, params=params)
    return [c["name"] for c in reply.result]


async def _walk(bed: Bed, owner: uuid.UUID, limit: int, params: list[tuple[str, str]]) -> list[str]:
    seen: list[str] = []
    while True:
        page_params = [*params, ("limit", str(limit))]
        if seen:
            page_params.append(("start_after", seen[-1]))
        reply = await bed.call("GET", f"{BASE}/{owner}", owner, params=page_params)
        names = [c["name"] for c in reply.result]
        assert len(names) <= limit
        seen.extend(names)
        if len(names) < limit:
            return seen


def _expected(made: list[dict[str, Any]], *keys: tuple[str, bool]) -> list[str]:
    rows = list(made)
    for field, descending in reversed(keys):
        if field == "expires":
            rows.sort(key=lambda r: r["expires"] or "9999", reverse=descending)
        else:
            rows.sort(key=lambda r: r[field], reverse=descending)
    return [r["name"] for r in rows]


async def test_default_order_limit_and_depth(bed: Bed) -> None:
    owner = await bed.person()
    made = await _seed(bed, owner, 23)
    assert await _names(bed, owner) == sorted(c["name"] for c in made)
    assert await _names(bed, owner, limit="5") == [f"c{i:03d}" for i in range(5)]
    assert await _names(bed, owner, limit="5", start_after="c017") == [
        f"c{i:03d}" for i in range(18, 23)
    ]
    assert await _walk(bed, owner, 4, []) == sorted(c["name"] for c in made)
    assert await _walk(bed, owner, 4, [("order", "name[desc]")]) == sorted(
        (c["name"] for c in made), reverse=True
    )


async def test_multi_field_order_pages_exactly(bed: Bed) -> None:
    owner = await bed.person()
    made = await _seed(bed, owner, 17)
    cases = [
        [("expires", False)],
        [("expires", True)],
        [("expires", True), ("name", False)],
        [("created_at", True)],
        [("updated_at", False)],
    ]
    for keys in cases:
        params = [("order", f"{f}[{'desc' if d else 'asc'}]") for f, d in keys]
        expected = _expected(
            made, *keys, *([] if any(f == "name" for f, _ in keys) else [("name", keys[0][1])])
        )
        assert await _names(bed, owner, **{}) == sorted(expected)  # sanity
        reply = await bed.call("GET", f"{BASE}/{owner}", owner, params=params)
        assert [c["name"] for c in reply.result] == expected, keys
        assert await _walk(bed, owner, 3, params) == expected, keys


async def test_other_accounts_are_not_listed(bed: Bed) -> None:
    owner, other = await bed.person(), await bed.person()
    await bed.create(other, {"type": "secret", "secret": "x"}, name="theirs")
    await bed.create(owner, {"type": "secret", "secret": "x"}, name="mine")
    assert await _names(bed, owner) == ["mine"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["name[eq]c003"], ["c003"]),
        (["name[ne]c003"], ["c000", "c001", "c002", "c004", "c005"]),
        (["name[gt]c003"], ["c004", "c005"]),
        (["name[gte]c003"], ["c003", "c004", "c005"]),
        (["name[lt]c002"], ["c000", "c001"]),
        (["name[lte]c002"], ["c000", "c001", "c002"]),
        (["fullname[like]%red 4"], ["c004"]),
        (["fullname[like]CRED _"], ["c000", "c001", "c002", "c003", "c004", "c005"]),
        (["name[in]c001,c005,zzz"], ["c001", "c005"]),
        (["config.type[eq]aws"], ["c000", "c002", "c004"]),
        (["config.type[in]secret,token"], ["c001", "c003", "c005"]),
        (["managed[eq]Unmanaged"], ["c000", "c001", "c002", "c003", "c004", "c005"]),
        (["managed[eq]Managed"], []),
        (["expires[eq]null"], ["c000", "c003"]),
        (["expires[ne]null"], ["c001", "c002", "c004", "c005"]),
        ([f"expires[gt]{NOW.isoformat()}"], ["c001", "c005"]),
        (["expires[lte]2030-01-01T00:00:00Z"], ["c002", "c004"]),
        (["expires[in]2030-01-02T00:00:00+00:00"], ["c001", "c005"]),
        (["created_at[lt]2000-01-01T00:00:00Z"], []),
        (
            ["created_at[gte]2000-01-01T00:00:00Z", "config.type[eq]aws", "name[ne]c000"],
            ["c002", "c004"],
        ),
    ],
)
async def test_each_filter_operator(bed: Bed, filters: list[str], expected: list[str]) -> None:
    owner = await bed.person()
    await _seed(bed, owner, 6)
    params = [("filter", f) for f in filters]
    reply = await bed.call("GET", f"{BASE}/{owner}", owner, params=params)
    assert [c["name"] for c in reply.result] == expected


async def test_filters_with_paging(bed: Bed) -> None:
    owner = await bed.person()
    made = await _seed(bed, owner, 14)
    secrets = [c["name"] for c in made if c["config"]["type"] == "secret"]
    assert await _walk(bed, owner, 2, [("filter", "config.type[eq]secret")]) == secrets


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "colour"}, "order[0]"),
        ({"order": "name[up]"}, "order[0]"),
        ({"filter": "name=x"}, "filter[0]"),
        ({"filter": "secret[eq]x"}, "filter[0]"),
        ({"filter": "name[regex]x"}, "filter[0]"),
        ({"filter": "expires[like]2030"}, "text fields"),
        ({"filter": "created_at[gt]yesterday"}, "ISO 8601"),
        ({"filter": "created_at[eq]null"}, "null"),
        ({"filter": "config.type[eq]kerberos"}, "config.type is one of"),
        ({"filter": "managed[eq]managed"}, "managed is one of"),
        ({"start_after": "Not A Name"}, "start_after"),
        ({"start_after": "missing"}, "no credential named missing"),
    ],
)
async def test_bad_parameters_are_named(bed: Bed, params: dict[str, str], fragment: str) -> None:
    owner = await bed.person()
    reply = await bed.call("GET", f"{BASE}/{owner}", owner, params=params)
    assert_problem(reply, 400, fragment)


async def test_repeated_order_field_is_refused(bed: Bed) -> None:
    owner = await bed.person()
    params = [("order", "name"), ("order", "name[desc]")]
    assert_problem(await bed.call("GET", f"{BASE}/{owner}", owner, params=params), 400, "already")


class _Explaining:
    """A connection stand-in that explains each query it runs."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.plan = ""

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        rows = await self.conn.fetch("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, *args)
        self.plan = "\n".join(r[0] for r in rows)
        return await self.conn.fetch(sql, *args)


async def test_a_deep_page_is_an_index_range_scan(bed: Bed) -> None:
    """The keyset query reads from the anchor on, through an index, at any depth."""
    owner = await bed.person()
    async with bed.db.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO credential (id, owner_id, name, fullname, type, managed, key_id, created_at)
            SELECT gen_random_uuid(), $1, 'n' || lpad(i::text, 6, '0'), 'x', 'secret',
                   'Unmanaged', 'k', now() - i * interval '1 second'
            FROM generate_series(1, 20000) AS i
            """,
            owner,
        )
        await conn.execute("ANALYZE credential")
        store = bed.credentials.service.store
        for order in (["name"], ["created_at[desc]"], ["expires"]):
            query = parse_list_query(ListParameters(limit=10, start_after="n015000", order=order))
            rows = await store.list_credentials(conn, owner, query)
            assert len(rows) == 10
            # The same statement, explained: an index scan, reading few rows.
            explaining = _Explaining(conn)
            await store.list_credentials(explaining, owner, query)  # type: ignore[arg-type]
            plan = explaining.plan
            # The anchor bounds the index scan itself: nothing read and thrown away, no sort.
            assert "Index Cond" in plan and "Rows Removed" not in plan, plan
            assert "Seq Scan" not in plan and "Sort" not in plan, plan
