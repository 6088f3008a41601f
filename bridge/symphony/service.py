"""Company certificates: what administrators store, list, change and delete.

A stored certificate's issuer is the stored certificate whose subject is its issuer's name and
whose key verifies its signature; it is found when either of the two is stored, whichever
comes second (``issuerFingerPrint``, ``issuedBy``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
from cryptography import x509

from ..errors import Conflict, NotFound
from . import certs
from .models import CertStatus, CertType, CompanyCert
from .store import CompanyCertStore


class CompanyCertService:
    def __init__(self, store: CompanyCertStore) -> None:
        self._store = store
        self._on_stored: list[Callable[[str, str], None]] = []

    def on_stored(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(fingerprint, pem)`` after a certificate is stored (the TLS trust
        store learns it before the next handshake)."""
        self._on_stored.append(callback)

    async def create(
        self,
        conn: asyncpg.Connection,
        pem: str,
        *,
        name: str | None,
        type_: CertType,
        status: CertStatus,
        admin: int | None,
    ) -> CompanyCert:
        """Store a pasted certificate (400 if not a usable one, 409 if already stored)."""
        parsed = certs.parse_pem(pem)
        cert = parsed.cert
        issuer = await self._find_issuer(conn, cert)
        subject_der = cert.subject.public_bytes()
        stored = await self._store.insert_cert(
            conn,
            CompanyCert(
                fingerprint=parsed.fingerprint,
                pem=parsed.pem,
                name=name or parsed.common_name,
                type=type_,
                status=status,
                common_name=parsed.common_name,
                issuer_fingerprint=issuer.fingerprint if issuer else None,
                not_after=cert.not_valid_after_utc,
                last_seen=None,
                updated_at=datetime.now(UTC),
                updated_by=admin,
            ),
            subject_der,
            cert.issuer.public_bytes(),
        )
        if stored is None:
            raise Conflict(f"certificate {parsed.fingerprint} is already stored")
        children = [
            child.fingerprint
            for child in await self._store.list_orphans_issued_as(conn, subject_der)
            if child.fingerprint != stored.fingerprint
            and certs.directly_issued_by(certs.load(child.pem), cert)
        ]
        if children:
            await self._store.set_issuer(conn, children, stored.fingerprint)
        for callback in self._on_stored:
            callback(stored.fingerprint, stored.pem)
        return stored

    async def _find_issuer(
        self, conn: asyncpg.Connection, cert: x509.Certificate
    ) -> CompanyCert | None:
        if cert.issuer == cert.subject:
            return None  # self-signed: its own issuer
        for candidate in await self._store.list_with_subject(conn, cert.issuer.public_bytes()):
            if certs.directly_issued_by(cert, certs.load(candidate.pem)):
                return candidate
        return None

    async def get(self, conn: asyncpg.Connection, fingerprint: str) -> CompanyCert:
        found = await self._store.get_cert(conn, fingerprint)
        if found is None:
            raise NotFound(f"no company certificate {fingerprint}")
        return found

    async def list_certs(
        self,
        conn: asyncpg.Connection,
        *,
        types: Sequence[CertType] | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> list[CompanyCert]:
        return await self._store.list_certs(conn, types=types, limit=limit, offset=skip)

    async def issued_by(
        self, conn: asyncpg.Connection, fingerprint: str, *, skip: int = 0, limit: int = 100
    ) -> list[CompanyCert]:
        """The stored certificates ``fingerprint`` issued (404 if it is not stored)."""
        await self.get(conn, fingerprint)
        return await self._store.list_issued_by(conn, fingerprint, limit=limit, offset=skip)

    async def update(
        self,
        conn: asyncpg.Connection,
        fingerprint: str,
        *,
        name: str | None,
        type_: CertType | None,
        status: CertStatus | None,
        admin: int | None,
    ) -> CompanyCert:
        """Change a certificate's name, type or status (takes effect on the next
        authentication)."""
        updated = await self._store.update_attributes(
            conn, fingerprint, name=name, type_=type_, status=status, updated_by=admin
        )
        if updated is None:
            raise NotFound(f"no company certificate {fingerprint}")
        return updated

    async def delete(self, conn: asyncpg.Connection, fingerprint: str) -> None:
        if not await self._store.delete_cert(conn, fingerprint):
            raise NotFound(f"no company certificate {fingerprint}")

    async def pems(self, conn: asyncpg.Connection) -> dict[str, str]:
        """Every stored certificate's PEM, by fingerprint."""
        return await self._store.list_pems(conn)
