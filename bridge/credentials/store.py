"""All SQL of credentials."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from .listing import Filter, ListQuery
from .models import Credential

_NAMES = (
    "id, owner_id, owner_type, name, fullname, type, managed, public_config AS public, sealed, "
    "key_id, expires, created_at, updated_at"
)
_COLUMNS = _NAMES
_C_COLUMNS = ", ".join(f"c.{name.strip()}" for name in _NAMES.split(","))
# What each orderable or filterable field is in SQL (fixed fragments; values are parameters).
_SORT_EXPR = {
    "name": "{t}.name",
    "created_at": "{t}.created_at",
    "updated_at": "{t}.updated_at",
    "expires": "COALESCE({t}.expires, 'infinity'::timestamptz)",
}
_FILTER_EXPR = {
    "name": "c.name",
    "fullname": "c.fullname",
    "config.type": "c.type",
    "managed": "c.managed",
    "expires": "c.expires",
    "created_at": "c.created_at",
}
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(**dict(row))


def _filter_sql(item: Filter, params: list[Any]) -> str:
    expr = _FILTER_EXPR[item.field]
    if item.value is None:
        return f"{expr} IS NULL" if item.op == "eq" else f"{expr} IS NOT NULL"
    params.append(item.value)
    n = len(params)
    if item.op == "in":
        cast = "timestamptz[]" if isinstance(item.value[0], datetime) else "text[]"  # type: ignore[index]
        return f"{expr} = ANY(${n}::{cast})"
    if item.op == "like":
        return f"{expr} ILIKE ${n}"
    return f"{expr} {_COMPARE[item.op]} ${n}"


def _after_sql(query: ListQuery, anchor: asyncpg.Record, params: list[Any]) -> str:
    """Rows after the anchor row in the query's order (keyset), its values as parameters."""
    values = []
    for key in query.order:
        params.append(anchor[key.field])
        param = f"${len(params)}"
        if key.field == "expires":
            param = f"COALESCE({param}::timestamptz, 'infinity'::timestamptz)"
        values.append(param)
    columns = [_SORT_EXPR[k.field].format(t="c") for k in query.order]
    if len({k.descending for k in query.order}) == 1:
        # One direction: a row comparison, which the index takes as its range condition.
        cmp = "<" if query.order[0].descending else ">"
        return f"({', '.join(columns)}) {cmp} ({', '.join(values)})"
    alternatives = []
    for i, key in enumerate(query.order):
        terms = [f"{columns[j]} = {values[j]}" for j in range(i)]
        terms.append(f"{columns[i]} {'<' if key.descending else '>'} {values[i]}")
        alternatives.append("(" + " AND ".join(terms) + ")")
    # The first key's bound on its own lets the index range-scan from the anchor.
    bound = f"{columns[0]} {'<=' if query.order[0].descending else '>='} {values[0]}"
    return f"{bound} AND (" + " OR ".join(alternatives) + ")"


class CredentialStore:
    async def insert_credential(
        self, conn: asyncpg.Connection, credential: Credential, lookup_hash: bytes | None
    ) -> Credential:
        """Insert a credential; a name taken in the account raises ``UniqueViolationError``."""
        row = await conn.fetchrow(
            f"""
            INSERT INTO credential (id, owner_id, owner_type, name, fullname, type, managed,
                                    public_config, sealed, key_id, lookup_hash, expires)
            VALUES ($1, $2, 'account', $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING {_COLUMNS}
            """,
            credential.id,
            credential.owner_id,
            credential.name,
            credential.fullname,
            credential.type,
            credential.managed,
            credential.public,
            credential.sealed,
            credential.key_id,
            lookup_hash,
            credential.expires,
        )
        return _credential(row)

    async def update_credential(
        self, conn: asyncpg.Connection, credential: Credential, lookup_hash: bytes | None
    ) -> Credential:
        """Replace a credential's mutable fields; ``updated_at`` becomes now."""
        row = await conn.fetchrow(
            f"""
            UPDATE credential
            SET name = $2, fullname = $3, type = $4, public_config = $5, sealed = $6,
                key_id = $7, lookup_hash = $8, expires = $9, updated_at = now()
            WHERE id = $1
            RETURNING {_COLUMNS}
            """,
            credential.id,
            credential.name,
            credential.fullname,
            credential.type,
            credential.public,
            credential.sealed,
            credential.key_id,
            lookup_hash,
            credential.expires,
        )
        return _credential(row)

    async def reseal_credential(
        self,
        conn: asyncpg.Connection,
        credential_id: uuid.UUID,
        sealed: dict[str, str],
        key_id: str,
        lookup_hash: bytes | None,
    ) -> None:
        """Store secrets sealed under another key (the credential itself is unchanged)."""
        await conn.execute(
            "UPDATE credential SET sealed = $2, key_id = $3, lookup_hash = $4 WHERE id = $1",
            credential_id,
            sealed,
            key_id,
            lookup_hash,
        )

    async def get_credential(
        self, conn: asyncpg.Connection, credential_id: uuid.UUID, *, for_update: bool = False
    ) -> Credential | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM credential WHERE id = $1{lock}", credential_id
        )
        return None if row is None else _credential(row)

    async def get_by_lookup(
        self, conn: asyncpg.Connection, hashes: list[bytes], kind: str
    ) -> Credential | None:
        """The credential of a type whose lookup hash is one of ``hashes`` (index scan)."""
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM credential WHERE lookup_hash = ANY($1::bytea[]) AND type = $2",
            hashes,
            kind,
        )
        return None if row is None else _credential(row)

    async def list_credentials(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, query: ListQuery
    ) -> list[Credential] | None:
        """One page of an account's credentials in the query's order, after the one named
        ``start_after`` (``None`` when the account has no credential of that name)."""
        params: list[Any] = [owner_id]
        where = ["c.owner_id = $1"]
        if query.start_after is not None:
            anchor = await conn.fetchrow(
                "SELECT name, created_at, updated_at, expires FROM credential "
                "WHERE owner_id = $1 AND name = $2",
                owner_id,
                query.start_after,
            )
            if anchor is None:
                return None
            where.append(_after_sql(query, anchor, params))
        where.extend(_filter_sql(item, params) for item in query.filters)
        order = ", ".join(
            f"{_SORT_EXPR[k.field].format(t='c')} {'DESC' if k.descending else 'ASC'}"
            for k in query.order
        )
        params.append(query.limit)
        rows = await conn.fetch(
            f"SELECT {_C_COLUMNS} FROM credential c WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT ${len(params)}",
            *params,
        )
        return [_credential(r) for r in rows]

    async def delete_credential(self, conn: asyncpg.Connection, credential_id: uuid.UUID) -> bool:
        status: str = await conn.execute("DELETE FROM credential WHERE id = $1", credential_id)
        return status == "DELETE 1"

    async def list_sealed_under_other_keys(
        self, conn: asyncpg.Connection, key_id: str, limit: int
    ) -> list[Credential]:
        """Credentials whose secrets are not sealed under ``key_id`` (locked, skipping others')."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM credential WHERE key_id <> $1 ORDER BY id LIMIT $2 "
            "FOR UPDATE SKIP LOCKED",
            key_id,
            limit,
        )
        return [_credential(r) for r in rows]
