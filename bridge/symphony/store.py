"""All SQL of company certificates and certificate-authentication sessions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from .models import CertStatus, CertType, CompanyCert

_COLUMNS = (
    "fingerprint, pem, name, type, status, common_name, issuer_fingerprint, not_after, "
    "last_seen, updated_at, updated_by"
)


def _cert(row: asyncpg.Record) -> CompanyCert:
    values = dict(row)
    values["type"] = CertType(values["type"])
    values["status"] = CertStatus(values["status"])
    return CompanyCert(**values)


class CompanyCertStore:
    async def insert_cert(
        self,
        conn: asyncpg.Connection,
        cert: CompanyCert,
        subject_der: bytes,
        issuer_der: bytes,
    ) -> CompanyCert | None:
        """Store a certificate; None when its fingerprint is already stored."""
        row = await conn.fetchrow(
            f"""
            INSERT INTO company_cert (fingerprint, pem, name, type, status, common_name,
                                      subject_der, issuer_der, issuer_fingerprint, not_after,
                                      updated_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (fingerprint) DO NOTHING
            RETURNING {_COLUMNS}
            """,
            cert.fingerprint,
            cert.pem,
            cert.name,
            cert.type.value,
            cert.status.value,
            cert.common_name,
            subject_der,
            issuer_der,
            cert.issuer_fingerprint,
            cert.not_after,
            cert.updated_by,
        )
        return None if row is None else _cert(row)

    async def get_cert(self, conn: asyncpg.Connection, fingerprint: str) -> CompanyCert | None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM company_cert WHERE fingerprint = $1", fingerprint
        )
        return None if row is None else _cert(row)

    async def list_certs(
        self,
        conn: asyncpg.Connection,
        *,
        types: Sequence[CertType] | None,
        limit: int,
        offset: int,
    ) -> list[CompanyCert]:
        """Certificates in the order they were stored (of ``types`` only, when given)."""
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM company_cert
            WHERE $1::text[] IS NULL OR type = ANY($1::text[])
            ORDER BY created_at, fingerprint LIMIT $2 OFFSET $3
            """,
            None if types is None else [t.value for t in types],
            limit,
            offset,
        )
        return [_cert(r) for r in rows]

    async def list_issued_by(
        self, conn: asyncpg.Connection, fingerprint: str, *, limit: int, offset: int
    ) -> list[CompanyCert]:
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM company_cert WHERE issuer_fingerprint = $1
            ORDER BY created_at, fingerprint LIMIT $2 OFFSET $3
            """,
            fingerprint,
            limit,
            offset,
        )
        return [_cert(r) for r in rows]

    async def list_with_subject(
        self, conn: asyncpg.Connection, subject_der: bytes
    ) -> list[CompanyCert]:
        """Stored certificates whose subject is this name (candidate issuers)."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM company_cert WHERE subject_der = $1 ORDER BY created_at",
            subject_der,
        )
        return [_cert(r) for r in rows]

    async def list_orphans_issued_as(
        self, conn: asyncpg.Connection, issuer_der: bytes
    ) -> list[CompanyCert]:
        """Stored certificates naming this issuer whose issuer is not known yet."""
        rows = await conn.fetch(
            f"""
            SELECT {_COLUMNS} FROM company_cert
            WHERE issuer_der = $1 AND issuer_fingerprint IS NULL
            """,
            issuer_der,
        )
        return [_cert(r) for r in rows]

    async def set_issuer(
        self, conn: asyncpg.Connection, fingerprints: Sequence[str], issuer: str
    ) -> None:
        await conn.execute(
            "UPDATE company_cert SET issuer_fingerprint = $2 WHERE fingerprint = ANY($1::text[])",
            list(fingerprints),
            issuer,
        )

    async def update_attributes(
        self,
        conn: asyncpg.Connection,
        fingerprint: str,
        *,
        name: str | None,
        type_: CertType | None,
        status: CertStatus | None,
        updated_by: int | None,
    ) -> CompanyCert | None:
        row = await conn.fetchrow(
            f"""
            UPDATE company_cert
            SET name = COALESCE($2, name), type = COALESCE($3, type),
                status = COALESCE($4, status), updated_by = $5, updated_at = now()
            WHERE fingerprint = $1
            RETURNING {_COLUMNS}
            """,
            fingerprint,
            name,
            None if type_ is None else type_.value,
            None if status is None else status.value,
            updated_by,
        )
        return None if row is None else _cert(row)

    async def delete_cert(self, conn: asyncpg.Connection, fingerprint: str) -> bool:
        deleted = await conn.fetchval(
            "DELETE FROM company_cert WHERE fingerprint = $1 RETURNING fingerprint", fingerprint
        )
        return deleted is not None

    async def touch_last_seen(
        self, conn: asyncpg.Connection, fingerprints: Sequence[str], at: datetime
    ) -> None:
        await conn.execute(
            "UPDATE company_cert SET last_seen = $2 WHERE fingerprint = ANY($1::text[])",
            list(fingerprints),
            at,
        )

    async def list_pems(self, conn: asyncpg.Connection) -> dict[str, str]:
        """Every stored certificate's PEM by fingerprint (the TLS listener's trust store)."""
        rows = await conn.fetch("SELECT fingerprint, pem FROM company_cert")
        return {r["fingerprint"]: r["pem"] for r in rows}

    # --- sessions ---------------------------------------------------------------------------

    async def insert_session(
        self,
        conn: asyncpg.Connection,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        fingerprint: str,
        expires_at: datetime,
    ) -> None:
        await conn.execute(
            """
            INSERT INTO symphony_session (id, user_id, fingerprint, expires_at)
            VALUES ($1, $2, $3, $4)
            """,
            session_id,
            user_id,
            fingerprint,
            expires_at,
        )

    async def revoke_session(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> bool:
        """Revoke a live session; False when there is none (unknown, expired or revoked)."""
        revoked = await conn.fetchval(
            """
            UPDATE symphony_session SET revoked_at = now()
            WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()
            RETURNING id
            """,
            session_id,
        )
        return revoked is not None

    async def session_live(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> bool:
        live = await conn.fetchval(
            """
            SELECT true FROM symphony_session
            WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()
            """,
            session_id,
        )
        return live is True

    async def delete_expired_sessions(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        """Forget a user's sessions that ended (expired, or logged out and expired since)."""
        await conn.execute(
            "DELETE FROM symphony_session WHERE user_id = $1 AND expires_at < now()", user_id
        )
