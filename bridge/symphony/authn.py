"""Certificate authentication: the client certificate presented over TLS, checked against the
company certificates, names a network user, who gets a session.

The certificate is accepted when it is itself stored as a ``USER`` certificate with status
``TRUSTED`` or ``KNOWN``, or when it chains (each signature and validity period checked) through
stored certificates to one of type ``USERSIGNING`` with status ``TRUSTED``. A ``REVOKED`` or
``DISABLED`` certificate anywhere on the chain refuses it. Its subject's common name is the
network user's numeric id in decimal (display names are not unique). Statuses are read on
every authentication, so a change takes effect on the next one; sessions already issued live
until they expire or are logged out.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from cryptography import x509

from ..db.database import Database
from ..errors import Forbidden, Unauthorized
from ..users.models import NetworkUser
from ..users.service import UserService
from . import certs
from .models import CertStatus, CertType, CompanyCert, Session
from .store import CompanyCertStore

MAX_CHAIN = 8
_NUMBER = re.compile("[1-9][0-9]{0,18}")
_REFUSED = (CertStatus.REVOKED, CertStatus.DISABLED)


@dataclass(frozen=True)
class Authenticated:
    user: NetworkUser
    session: Session


class CertificateAuthenticator:
    """Its public methods are entry points: each opens its own connection or transaction."""

    def __init__(self, db: Database, store: CompanyCertStore, users: UserService) -> None:
        self._db = db
        self._store = store
        self._users = users

    async def _chain(
        self, conn: asyncpg.Connection, leaf: x509.Certificate
    ) -> list[tuple[x509.Certificate, CompanyCert | None]]:
        """The leaf and its stored issuers, leaf first (the leaf's row when it is stored)."""
        chain = [(leaf, await self._store.get_cert(conn, certs.fingerprint_of(leaf)))]
        current = leaf
        while len(chain) < MAX_CHAIN and current.issuer != current.subject:
            issuer = None
            for row in await self._store.list_with_subject(conn, current.issuer.public_bytes()):
                candidate = certs.load(row.pem)
                if certs.directly_issued_by(current, candidate):
                    issuer = (candidate, row)
                    break
            if issuer is None:
                break
            chain.append(issuer)
            current = issuer[0]
        return chain

    async def authenticate(self, der: bytes, ttl: int) -> Authenticated:
        """The session of the user a client certificate (DER) names, or 403 saying why not
        (one transaction: the statuses read, the certificates seen and the session)."""
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            raise Forbidden("the client certificate cannot be parsed") from None
        async with self._db.transaction() as conn:
            return await self._authenticate(conn, leaf, ttl)

    async def _authenticate(
        self, conn: asyncpg.Connection, leaf: x509.Certificate, ttl: int
    ) -> Authenticated:
        now = datetime.now(UTC)
        chain = await self._chain(conn, leaf)
        for cert, row in chain:
            if not certs.valid_at(cert, now):
                who = "the client certificate" if cert is leaf else f"issuer {row and row.name}"
                raise Forbidden(f"{who} is not valid now (expired or not yet valid)")
            if row is not None and row.status in _REFUSED:
                raise Forbidden(f"certificate {row.fingerprint} is {row.status.value.lower()}")
        leaf_row = chain[0][1]
        trusted = (
            leaf_row is not None
            and leaf_row.type is CertType.USER
            and leaf_row.status in (CertStatus.TRUSTED, CertStatus.KNOWN)
        ) or any(
            row is not None
            and row.type is CertType.USERSIGNING
            and row.status is CertStatus.TRUSTED
            for _, row in chain[1:]
        )
        if not trusted:
            raise Forbidden(
                "the client certificate is not trusted: it is not stored as a TRUSTED or KNOWN "
                "USER certificate and chains to no TRUSTED USERSIGNING certificate"
            )
        name = certs.common_name(leaf) or ""
        user = None
        if _NUMBER.fullmatch(name):
            user = (await self._users.by_numbers(conn, [int(name)])).get(int(name))
        if user is None:
            raise Forbidden(
                "certificate authentication is not allowed: the certificate's common name "
                "must be the numeric id of a network user"
            )
        seen = [row.fingerprint for _, row in chain if row is not None]
        if seen:
            await self._store.touch_last_seen(conn, seen, now)
        session = Session(
            uuid.uuid4(), user.id, certs.fingerprint_of(leaf), now + timedelta(seconds=ttl)
        )
        await self._store.delete_expired_sessions(conn, user.id)
        await self._store.insert_session(
            conn, session.id, session.user_id, session.fingerprint, session.expires_at
        )
        return Authenticated(user, session)

    async def logout(self, session_id: uuid.UUID) -> None:
        """End a session (401 when it is unknown, expired or already ended)."""
        async with self._db.transaction() as conn:
            if not await self._store.revoke_session(conn, session_id):
                raise Unauthorized("no such session (expired or already logged out)")

    async def is_live(self, session_id: uuid.UUID) -> bool:
        """Whether a session token's session still counts (not logged out, not expired)."""
        async with self._db.acquire() as conn:
            return await self._store.session_live(conn, session_id)
