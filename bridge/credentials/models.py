"""The credential shapes: request bodies and responses as msgspec Structs (the seed's
``CredentialConfig`` union, ``CredentialResponse`` with ``CredentialConfigNoSecret``), and the
stored record.

Which fields of a config type are secret is declared once, in :data:`SECRET_FIELDS`: they are
sealed at rest and never rendered, except a secret the bridge generated, returned once by the
create call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from ..storable_text import TEXT_PATTERN, JsonObject, JsonValue
from ..storable_text import Text as AnyText

Aware = Annotated[datetime, msgspec.Meta(tz=True)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=TEXT_PATTERN)]
NAME_PATTERN = "^[a-z0-9_-]{1,128}$"
Name = Annotated[
    str, msgspec.Meta(pattern=NAME_PATTERN, description="lowercase letters, digits, _ and -")
]
#: A secret that authenticates (an API key, a client secret): long enough not to be guessed.
KeySecret = Annotated[
    str,
    msgspec.Meta(
        pattern="^[A-Za-z0-9_\\-~+/=]{16,4096}$",
        description="at least 16 letters, digits or -_~+/=; left out, one is generated",
    ),
]
FullName = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=TEXT_PATTERN)]
OwnerType = Literal["account", "integration", "integration_point", "organization_webhook"]
Managed = Literal["Managed", "Unmanaged"]

CONFIG_TYPES = ("aws", "token", "basic", "secret", "oauth_client")
#: The secret fields of each config type: sealed at rest, never rendered.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "aws": ("secret_access_key", "session"),
    "token": ("secret",),
    "basic": ("secret",),
    "secret": ("secret",),
    "oauth_client": ("client_secret", "extra"),
}
#: Secrets the bridge generates when a create call leaves them out.
GENERATED_SECRETS = {"token": "secret", "oauth_client": "client_secret"}


class _Config(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    pass


class AwsCredential(_Config, tag="aws"):
    access_key_id: Text
    secret_access_key: Text
    session: Text | None = None


class TokenCredential(_Config, tag="token"):
    secret: KeySecret | None = None


class BasicCredential(_Config, tag="basic"):
    username: Text
    secret: Text


class SecretCredential(_Config, tag="secret"):
    secret: Text


class OAuthClientCredential(_Config, tag="oauth_client"):
    client_id: Text
    client_secret: KeySecret | None = None
    token_url: Text | None = None
    extra: JsonObject | None = None


CredentialConfig = (
    AwsCredential | TokenCredential | BasicCredential | SecretCredential | OAuthClientCredential
)


class CredentialCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST /v1/credentials/{ownerId}``."""

    config: CredentialConfig
    name: Name | None = None
    fullname: FullName | None = None
    #: Credentials here belong to an account (a network user).
    owner_type: Literal["account"] | None = None
    expires: Aware | None = None


class CredentialUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``PUT /v1/credentials/{ownerId}/{credentialId}``: the whole credential (secrets left out
    of ``config`` keep their stored values when the type is unchanged)."""

    id: AnyText
    owner_type: Literal["account"]
    fullname: FullName
    managed: Managed
    name: Name
    created_at: Aware
    updated_at: Aware
    account_id: AnyText | None = None
    integration_id: AnyText | None = None
    integration_point_id: AnyText | None = None
    organization_webhook_id: AnyText | None = None
    #: A ``CredentialConfig``, checked once stored secrets left out are filled in.
    config: JsonObject | None = None
    expires: Aware | None = None


class PatchOperation(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One RFC 6902 operation (``value`` may be JSON null, so absence is told apart)."""

    op: Literal["add", "copy", "move", "remove", "replace", "test"]
    path: AnyText
    from_: AnyText | None = msgspec.field(default=None, name="from")
    value: JsonValue = msgspec.UNSET


class _ConfigOut(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    pass


class AwsConfigOut(_ConfigOut, tag="aws"):
    access_key_id: str


class TokenConfigOut(_ConfigOut, tag="token"):
    secret: str | None = None  # only in the create response, when generated


class BasicConfigOut(_ConfigOut, tag="basic"):
    username: str


class SecretConfigOut(_ConfigOut, tag="secret"):
    pass


class OAuthClientConfigOut(_ConfigOut, tag="oauth_client"):
    client_id: str
    token_url: str | None = None
    client_secret: str | None = None  # only in the create response, when generated


CredentialConfigNoSecret = (
    AwsConfigOut | TokenConfigOut | BasicConfigOut | SecretConfigOut | OAuthClientConfigOut
)


class CredentialResponse(msgspec.Struct, kw_only=True):
    id: str
    account_id: str
    owner_type: OwnerType
    fullname: str
    config: CredentialConfigNoSecret
    expires: datetime | None
    managed: Managed
    name: str
    created_at: datetime
    updated_at: datetime


class CredentialResult(msgspec.Struct):
    result: CredentialResponse


class CredentialList(msgspec.Struct):
    result: list[CredentialResponse]


@dataclass(frozen=True)
class Credential:
    """A stored credential; ``sealed`` holds its secret fields, each sealed on its own."""

    id: uuid.UUID
    owner_id: uuid.UUID
    owner_type: str
    name: str
    fullname: str
    type: str
    managed: str
    public: dict[str, Any]
    sealed: dict[str, str]
    key_id: str
    expires: datetime | None
    created_at: datetime
    updated_at: datetime

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now


def split_config(config: CredentialConfig) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The type, the non-secret fields and the secret fields (as text) of a config."""
    fields = msgspec.to_builtins(config)
    kind = fields.pop("type")
    secret_names = SECRET_FIELDS[kind]
    public = {k: v for k, v in fields.items() if k not in secret_names and v is not None}
    secrets = {
        k: v if isinstance(v, str) else msgspec.json.encode(v).decode()
        for k, v in fields.items()
        if k in secret_names and v is not None
    }
    return kind, public, secrets


def join_config(kind: str, public: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """The full config as JSON values (``extra`` decoded), e.g. for a JSON Patch document."""
    joined: dict[str, Any] = {"type": kind, **public}
    for name, value in secrets.items():
        joined[name] = msgspec.json.decode(value) if name == "extra" else value
    return joined


def render(credential: Credential, generated: dict[str, str] | None = None) -> CredentialResponse:
    """The response shape: the config's type and non-secret fields (plus a generated secret)."""
    config = msgspec.convert(
        {"type": credential.type, **credential.public, **(generated or {})},
        CredentialConfigNoSecret,
    )
    return CredentialResponse(
        id=str(credential.id),
        account_id=str(credential.owner_id),
        owner_type="account",
        fullname=credential.fullname,
        config=config,
        expires=credential.expires,
        managed="Managed" if credential.managed == "Managed" else "Unmanaged",
        name=credential.name,
        created_at=credential.created_at,
        updated_at=credential.updated_at,
    )
