"""Credentials as ways into the bridge: ``token`` credentials are API keys, ``basic`` ones
answer HTTP Basic, ``oauth_client`` ones obtain tokens with the client-credentials grant.

A presented secret is found by its keyed hash (one index lookup, no row decrypted but the one
found), then compared with the decrypted secret in constant time. An expired or deleted
credential authenticates nothing from that instant: every request looks it up again.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime

from ..db.database import Database
from ..errors import Unauthorized
from .crypto import DecryptionError, KeySource
from .models import Credential
from .service import lookup_material
from .store import CredentialStore


class CredentialAuthenticator:
    def __init__(
        self,
        db: Database,
        store: CredentialStore,
        keys: KeySource,
        admin_accounts: frozenset[uuid.UUID] = frozenset(),
    ) -> None:
        self.db = db
        self.store = store
        self.keys = keys
        self.admin_accounts = admin_accounts

    def is_admin(self, owner_id: uuid.UUID) -> bool:
        return owner_id in self.admin_accounts

    async def _find(
        self, kind: str, public: dict[str, str], secret: dict[str, str], what: str
    ) -> Credential:
        keyring = self.keys.get()
        if keyring is None:
            raise Unauthorized(f"unknown {what}")
        material = lookup_material(kind, public, secret)
        assert material is not None
        async with self.db.acquire() as conn:
            credential = await self.store.get_by_lookup(conn, keyring.lookup_hashes(material), kind)
        if credential is None:
            raise Unauthorized(f"unknown {what}")
        try:
            opened = keyring.open_all(credential.id, credential.sealed)
        except DecryptionError:
            raise Unauthorized(f"unknown {what}") from None
        field = "client_secret" if kind == "oauth_client" else "secret"
        matches = hmac.compare_digest(opened[field].encode(), secret[field].encode())
        for name, value in public.items():
            matches &= hmac.compare_digest(
                str(credential.public.get(name)).encode(), value.encode()
            )
        if not matches:
            raise Unauthorized(f"unknown {what}")
        if credential.expired(datetime.now(UTC)):
            raise Unauthorized(f"{what} expired")
        return credential

    async def api_key(self, key: str) -> Credential:
        """The ``token`` credential whose secret is ``key``, or 401."""
        return await self._find("token", {}, {"secret": key}, "API key")

    async def basic(self, username: str, password: str) -> Credential:
        """The ``basic`` credential with this username and secret, or 401."""
        return await self._find(
            "basic", {"username": username}, {"secret": password}, "username or password"
        )

    async def client(self, client_id: str, client_secret: str) -> Credential:
        """The ``oauth_client`` credential with this client id and secret, or 401."""
        return await self._find(
            "oauth_client", {"client_id": client_id}, {"client_secret": client_secret}, "client"
        )

    async def alive(self, credential_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
        """Whether a credential a token was issued to still exists, unexpired, for its owner."""
        async with self.db.acquire() as conn:
            credential = await self.store.get_credential(conn, credential_id)
        return (
            credential is not None
            and credential.owner_id == owner_id
            and not credential.expired(datetime.now(UTC))
        )
