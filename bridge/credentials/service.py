"""Managing credentials: the seed's create, read, list, replace, patch and delete, with the
rules on names, owners and secrets, and who may do what.

A user manages the credentials of their own account; an administrator any account's; anyone else
is told the account does not exist (404, never 403). A request authenticated by a credential
manages none unless its account is an administrator.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from ..db.database import Database
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from ..users.service import UserService
from .crypto import DecryptionError, Keyring, KeySource
from .listing import ListParameters, parse_list_query
from .models import (
    GENERATED_SECRETS,
    SECRET_FIELDS,
    Credential,
    CredentialConfig,
    CredentialCreate,
    CredentialUpdate,
    PatchOperation,
    split_config,
)
from .patching import apply_patch, operations_of, patch_document
from .store import CredentialStore

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"[a-z0-9_-]{1,128}")
_READ_ONLY = ("id", "account_id", "owner_type", "managed", "created_at", "updated_at")


@dataclass(frozen=True)
class Actor:
    """Who asks: the network user acted for, whether as an administrator, and whether the
    request was authenticated by a credential (rather than a token issued to a person)."""

    user_id: uuid.UUID
    is_admin: bool
    via_credential: bool = False


def lookup_material(kind: str, public: dict[str, Any], secret: dict[str, str]) -> str | None:
    """What a credential that authenticates is found by (hashed, never stored as is)."""
    if kind == "token":
        return f"token\0{secret['secret']}"
    if kind == "basic":
        return f"basic\0{public['username']}\0{secret['secret']}"
    if kind == "oauth_client":
        return f"oauth_client\0{public['client_id']}\0{secret['client_secret']}"
    return None


def slug(fullname: str) -> str:
    """A name from a full name: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9_-]+", "_", fullname.lower()).strip("_")[:128]


class CredentialService:
    def __init__(
        self,
        db: Database,
        store: CredentialStore,
        users: UserService,
        keys: KeySource,
        admin_accounts: frozenset[uuid.UUID] = frozenset(),
    ) -> None:
        self.db = db
        self.store = store
        self.users = users
        self.keys = keys
        self.admin_accounts = admin_accounts

    def _keys(self) -> Keyring:
        keyring = self.keys.get()
        if keyring is None:
            raise Unavailable(f"credentials need an encryption key ({self.keys.config_key})")
        return keyring

    async def _authorize(self, conn: asyncpg.Connection, actor: Actor, owner_id: uuid.UUID) -> None:
        if actor.via_credential and not actor.is_admin:
            raise Forbidden("credentials cannot be managed with a credential")
        if (actor.user_id != owner_id and not actor.is_admin) or await self.users.find(
            conn, owner_id
        ) is None:
            raise NotFound(f"no account {owner_id}")

    async def _owned(
        self, conn: asyncpg.Connection, owner_id: uuid.UUID, credential_id: uuid.UUID
    ) -> Credential:
        credential = await self.store.get_credential(conn, credential_id, for_update=True)
        if credential is None or credential.owner_id != owner_id:
            raise NotFound(f"no credential {credential_id} in account {owner_id}")
        return credential

    def _names(
        self, credential_id: uuid.UUID, name: str | None, fullname: str | None
    ) -> tuple[str, str]:
        if name is not None and not _NAME_RE.fullmatch(name):
            raise BadRequest(f"name {name!r}: lowercase letters, digits, _ and - only (1 to 128)")
        if name is None:
            name = (slug(fullname) if fullname else "") or str(credential_id)
        return name, fullname or name

    async def _write(
        self,
        conn: asyncpg.Connection,
        credential: Credential,
        config: CredentialConfig,
        *,
        insert: bool,
    ) -> Credential:
        keys = self._keys()
        kind, public, secret = split_config(config)
        material = lookup_material(kind, public, secret)
        credential = replace(
            credential,
            type=kind,
            public=public,
            sealed=keys.seal_all(credential.id, secret),
            key_id=keys.newest_kid,
        )
        lookup = None if material is None else keys.lookup_hash(material)
        try:
            async with conn.transaction():  # a savepoint: a conflict leaves the caller's open
                if insert:
                    return await self.store.insert_credential(conn, credential, lookup)
                return await self.store.update_credential(conn, credential, lookup)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "credential_lookup_idx":
                raise Conflict(
                    "this secret is in use by another credential: choose another"
                ) from None
            raise Conflict(f"a credential named {credential.name} already exists") from None

    async def create(
        self,
        actor: Actor,
        owner_id: uuid.UUID,
        body: CredentialCreate,
        *,
        managed: str = "Unmanaged",
    ) -> tuple[Credential, dict[str, str]]:
        """Create a credential; a generated secret is returned beside it, this once only."""
        async with self.db.transaction() as conn:
            await self._authorize(conn, actor, owner_id)
            self._keys()
            credential_id = uuid.uuid4()
            name, fullname = self._names(credential_id, body.name, body.fullname)
            config = body.config
            generated: dict[str, str] = {}
            field = GENERATED_SECRETS.get(str(type(config).__struct_config__.tag))
            if field is not None and getattr(config, field) is None:
                generated[field] = secrets.token_urlsafe(32)  # 256 bits
                config = msgspec.structs.replace(config, **{field: generated[field]})
            now = datetime.now(UTC)
            draft = Credential(
                credential_id, owner_id, "account", name, fullname, "", managed, {}, {}, "",
                body.expires, now, now,
            )  # fmt: skip
            credential = await self._write(conn, draft, config, insert=True)
        log.info(
            "Credential %s (%s) created in account %s", credential.id, credential.type, owner_id
        )
        return credential, generated

    async def get(self, actor: Actor, owner_id: uuid.UUID, credential_id: uuid.UUID) -> Credential:
        async with self.db.acquire() as conn:
            await self._authorize(conn, actor, owner_id)
            credential = await self.store.get_credential(conn, credential_id)
        if credential is None or credential.owner_id != owner_id:
            raise NotFound(f"no credential {credential_id} in account {owner_id}")
        return credential

    async def lookup(self, actor: Actor, credential_id: uuid.UUID) -> Credential:
        """A credential by id alone, if the actor may see its account's."""
        async with self.db.acquire() as conn:
            credential = await self.store.get_credential(conn, credential_id)
            if credential is not None:
                try:
                    await self._authorize(conn, actor, credential.owner_id)
                except NotFound:
                    credential = None
        if credential is None:
            raise NotFound(f"no credential {credential_id}")
        return credential

    async def list_credentials(
        self, actor: Actor, owner_id: uuid.UUID, parameters: ListParameters
    ) -> list[Credential]:
        """A page of the account's credentials (the parameters are read once the account is
        known to be the actor's to see)."""
        async with self.db.acquire() as conn:
            await self._authorize(conn, actor, owner_id)
            query = parse_list_query(parameters)
            found = await self.store.list_credentials(conn, owner_id, query)
        if found is None:
            raise BadRequest(f"start_after: no credential named {query.start_after}")
        return found

    def _may_change(self, actor: Actor, credential: Credential) -> None:
        if credential.managed == "Managed" and not actor.is_admin:
            raise Forbidden(f"credential {credential.id} is managed by the bridge")

    async def replace_credential(
        self, actor: Actor, owner_id: uuid.UUID, credential_id: uuid.UUID, body: CredentialUpdate
    ) -> Credential:
        """PUT: the whole credential; secrets left out keep their values if the type stays.
        A body inconsistent with the credential (another id, owner or ``managed``) is a 409,
        as RFC 9110 (§9.3.4) suggests."""
        async with self.db.transaction() as conn:
            await self._authorize(conn, actor, owner_id)
            current = await self._owned(conn, owner_id, credential_id)
            self._may_change(actor, current)
            if body.id != str(credential_id):
                raise Conflict(f"id {body.id!r} is not the credential's ({credential_id})")
            if body.account_id not in (None, str(owner_id)):
                raise Conflict(f"account_id {body.account_id!r} is not the owner's ({owner_id})")
            for other in ("integration_id", "integration_point_id", "organization_webhook_id"):
                if getattr(body, other) is not None:
                    raise Conflict(f"{other}: credentials here belong to an account")
            if body.managed != current.managed:
                raise Conflict(f"managed cannot change (it is {current.managed})")
            raw = body.config or {"type": current.type, **current.public}
            if raw.get("type") == current.type:
                stored = self._keys().open_all(current.id, current.sealed)
                for field, value in stored.items():
                    raw.setdefault(field, msgspec.json.decode(value) if field == "extra" else value)
            config = _config(raw)
            name, fullname = self._names(current.id, body.name, body.fullname)
            updated = replace(current, name=name, fullname=fullname, expires=body.expires)
            return await self._write(conn, updated, config, insert=False)

    async def patch(
        self,
        actor: Actor,
        owner_id: uuid.UUID,
        credential_id: uuid.UUID,
        patch: list[PatchOperation],
    ) -> Credential:
        """PATCH: an RFC 6902 JSON Patch over the credential, applied whole or not at all."""
        async with self.db.transaction() as conn:
            await self._authorize(conn, actor, owner_id)
            current = await self._owned(conn, owner_id, credential_id)
            self._may_change(actor, current)
            operations = operations_of(patch)
            opened = self._keys().open_all(current.id, current.sealed)
            before = patch_document(current, opened)
            after = apply_patch(before, operations, secret_fields=_ALL_SECRET_FIELDS)
            for field in _READ_ONLY:
                if after.get(field) != before[field]:
                    raise BadRequest(f"{field} cannot be patched")
            try:
                body = msgspec.convert(after, CredentialUpdate)
            except msgspec.ValidationError as exc:
                raise BadRequest(f"the patched credential is invalid: {exc}") from None
            config = _config(body.config or {})
            name, fullname = self._names(current.id, body.name, body.fullname)
            updated = replace(current, name=name, fullname=fullname, expires=body.expires)
            return await self._write(conn, updated, config, insert=False)

    async def delete(self, actor: Actor, owner_id: uuid.UUID, credential_id: uuid.UUID) -> None:
        async with self.db.transaction() as conn:
            await self._authorize(conn, actor, owner_id)
            current = await self._owned(conn, owner_id, credential_id)
            self._may_change(actor, current)
            await self.store.delete_credential(conn, credential_id)
        log.info("Credential %s deleted from account %s", credential_id, owner_id)


_ALL_SECRET_FIELDS = frozenset(f for fields in SECRET_FIELDS.values() for f in fields)


def _config(raw: dict[str, Any]) -> CredentialConfig:
    try:
        config: CredentialConfig = msgspec.convert(raw, CredentialConfig)
        return config
    except msgspec.ValidationError as exc:
        raise BadRequest(f"config: {exc}") from None


async def rotate_key(db: Database, store: CredentialStore, keys: Keyring, batch: int = 100) -> int:
    """Re-seal every secret not sealed under the newest key (and re-hash its lookup), a batch
    per transaction; how many credentials moved."""
    total = 0
    while True:
        async with db.transaction() as conn:
            rows = await store.list_sealed_under_other_keys(conn, keys.newest_kid, batch)
            for credential in rows:
                try:
                    opened = keys.open_all(credential.id, credential.sealed)
                except DecryptionError as exc:
                    raise Unavailable(str(exc)) from None
                material = lookup_material(credential.type, credential.public, opened)
                await store.reseal_credential(
                    conn,
                    credential.id,
                    keys.seal_all(credential.id, opened),
                    keys.newest_kid,
                    None if material is None else keys.lookup_hash(material),
                )
        total += len(rows)
        if len(rows) < batch:
            return total
