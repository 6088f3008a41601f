"""Requests authenticated by a credential of the vault rather than by a person's JWT.

``Authorization: Bearer <API key>`` (or any place a token may be, see :mod:`.auth`) with a
``token`` credential's secret; ``Authorization: Basic`` with a ``basic`` credential's username and
secret; a JWT the bridge issued to an ``oauth_client`` credential (its ``cid`` claim), accepted
only while that credential exists and has not expired. Each acts as the credential's account,
as an administrator only when the account is listed in ``credentials.admin_accounts``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING, Any

from ..credentials.authn import CredentialAuthenticator
from ..credentials.models import Credential
from ..errors import Forbidden, Unauthorized
from ..ids import parse_uuid
from .context import Principal

if TYPE_CHECKING:
    from .context import ApiContext

#: The ``cid`` claim of a token issued to an OAuth client credential.
CREDENTIAL_CLAIM = "cid"
_JWT_RE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


def looks_like_jwt(token: str) -> bool:
    return _JWT_RE.fullmatch(token) is not None


def _authenticator(ctx: ApiContext, what: str) -> CredentialAuthenticator:
    auth = ctx.services.credential_auth
    if auth is None:
        raise Unauthorized(f"{what} are not accepted by this bridge")
    return auth


async def _principal(
    ctx: ApiContext, auth: CredentialAuthenticator, credential: Credential, as_user: str | None
) -> Principal:
    admin = auth.is_admin(credential.owner_id)
    acting = credential.owner_id
    if as_user is not None:
        if not admin:
            raise Forbidden("only administrators may act for another user (asUserId)")
        acting = parse_uuid(as_user, "asUserId")
        await ctx.services.users.require_acting(acting)
    return Principal(
        token_user_id=credential.owner_id,
        user_id=acting,
        is_admin=admin,
        credential_id=credential.id,
    )


async def api_key_principal(ctx: ApiContext, key: str, as_user: str | None) -> Principal:
    auth = _authenticator(ctx, "API keys")
    return await _principal(ctx, auth, await auth.api_key(key), as_user)


def decode_basic(value: str) -> tuple[str, str]:
    """The username and password of an ``Authorization: Basic`` value, or 401."""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise Unauthorized("malformed Basic credentials")
    return username, password


async def basic_principal(ctx: ApiContext, value: str, as_user: str | None) -> Principal:
    auth = _authenticator(ctx, "Basic credentials")
    username, password = decode_basic(value)
    return await _principal(ctx, auth, await auth.basic(username, password), as_user)


async def issued_to_credential(
    ctx: ApiContext, claims: dict[str, Any], principal: Principal
) -> Principal:
    """A JWT issued to an OAuth client credential counts only while the credential lives."""
    cid = claims.get(CREDENTIAL_CLAIM)
    if cid is None:
        return principal
    auth = _authenticator(ctx, "client-credentials tokens")
    try:
        credential_id = uuid.UUID(str(cid))
    except ValueError:
        raise Unauthorized("token names no valid credential (cid)") from None
    if not await auth.alive(credential_id, principal.token_user_id):
        raise Unauthorized("the credential this token was issued to is gone or expired")
    return Principal(
        token_user_id=principal.token_user_id,
        user_id=principal.user_id,
        is_admin=principal.is_admin,
        credential_id=credential_id,
    )
