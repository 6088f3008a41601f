"""Company certificates: what administrators store, list, change and delete.

A stored certificate's issuer is the stored certificate whose subject is its issuer's name and
whose key verifies its signature; it is found when either of the two is stored, whichever
comes second (``issuerFingerPrint``, ``issuedBy``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from cryptography import x509

from ..db.database import Database
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..users.service import UserService
from . import certs
from .models import POD_MANAGED, CertStatus, CertType, CompanyCert
from .store import CompanyCertStore

ENTITLEMENT = "The user lacks the required entitlement to perform this operation"


@dataclass(frozen=True)
class CertAdmin:
    """Who asks: the token's network user and whether the token makes them an administrator
    (only administrators see or change company certificates)."""

    user_id: uuid.UUID
    is_admin: bool


class CompanyCertService:
    """Entry points (no ``conn``) check the caller is an administrator and open their own
    connection or transaction; the methods taking ``conn`` run in the caller's."""

    def __init__(self, db: Database, store: CompanyCertStore, users: UserService) -> None:
        self._db = db
        self._store = store
        self._users = users
        self._on_stored: list[Callable[[str, str], None]] = []

    def on_stored(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(fingerprint, pem)`` after a certificate is stored (the TLS trust
        store learns it before the next handshake)."""
        self._on_stored.append(callback)

    # --- entry points (an administrator's, own connection and transaction) ---------------------

    @staticmethod
    def _require_admin(admin: CertAdmin) -> None:
        """403 for anyone but an administrator (before anything else is looked at)."""
        if not admin.is_admin:
            raise Forbidden(ENTITLEMENT)

    async def _admin_number(self, conn: asyncpg.Connection, admin: CertAdmin) -> int:
        """The administrator's numeric id, recorded as ``updatedBy``."""
        return (await self._users.get(conn, admin.user_id)).number

    async def list_page(
        self,
        admin: CertAdmin,
        *,
        types: Sequence[CertType] | None = None,
        skip: int = 0,
        limit: int = 100,
    ) -> list[CompanyCert]:
        """One page of the stored certificates, of ``types`` when given (400 for an empty
        list: a filter that selects nothing is a mistake, not a question)."""
        self._require_admin(admin)
        if types is not None and not types:
            raise BadRequest("give at least one certificate type")
        async with self._db.acquire() as conn:
            return await self.list_certs(
                conn, types=None if types is None else list(dict.fromkeys(types)),
                skip=skip, limit=limit,
            )  # fmt: skip

    async def pod_managed_page(
        self, admin: CertAdmin, *, skip: int = 0, limit: int = 100
    ) -> list[CompanyCert]:
        """One page of the certificates the pod itself manages (:data:`POD_MANAGED`)."""
        return await self.list_page(admin, types=POD_MANAGED, skip=skip, limit=limit)

    async def store(
        self,
        admin: CertAdmin,
        pem: str,
        *,
        name: str | None,
        type_: CertType | None,
        status: CertStatus | None,
    ) -> CompanyCert:
        """:meth:`create` in a transaction of its own (type and status are required); the
        :meth:`on_stored` callbacks run once it has committed."""
        self._require_admin(admin)
        if type_ is None or status is None:
            raise BadRequest("attributes.type and attributes.status are required")
        async with self._db.transaction() as conn:
            number = await self._admin_number(conn, admin)
            stored = await self.create(
                conn, pem, name=name, type_=type_, status=status, admin=number
            )
        for callback in self._on_stored:
            callback(stored.fingerprint, stored.pem)
        return stored

    async def details(self, admin: CertAdmin, fingerprint: str) -> CompanyCert:
        """The stored certificate ``fingerprint`` (404 if none)."""
        self._require_admin(admin)
        async with self._db.acquire() as conn:
            return await self.get(conn, fingerprint)

    async def change(
        self,
        admin: CertAdmin,
        fingerprint: str,
        *,
        name: str | None,
        type_: CertType | None,
        status: CertStatus | None,
    ) -> CompanyCert:
        """:meth:`update` in a transaction of its own (400 when nothing is to change)."""
        self._require_admin(admin)
        if name is None and type_ is None and status is None:
            raise BadRequest("nothing to update: give at least one of name, type, status")
        async with self._db.transaction() as conn:
            number = await self._admin_number(conn, admin)
            return await self.update(
                conn, fingerprint, name=name, type_=type_, status=status, admin=number
            )

    async def remove(self, admin: CertAdmin, fingerprint: str) -> None:
        """:meth:`delete` in a transaction of its own."""
        self._require_admin(admin)
        async with self._db.transaction() as conn:
            await self.delete(conn, fingerprint)

    async def issued_by_page(
        self, admin: CertAdmin, fingerprint: str, *, skip: int = 0, limit: int = 100
    ) -> list[CompanyCert]:
        """:meth:`issued_by` in a transaction of its own (one snapshot: the issuer and its page)."""
        self._require_admin(admin)
        async with self._db.transaction() as conn:
            return await self.issued_by(conn, fingerprint, skip=skip, limit=limit)

    async def all_pems(self) -> dict[str, str]:
        """:meth:`pems` on a pooled connection (the TLS listener's trust store)."""
        async with self._db.acquire() as conn:
            return await self.pems(conn)

    # --- in the caller's transaction ------------------------------------------------------------

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
