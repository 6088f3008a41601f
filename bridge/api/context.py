"""What the REST API's handlers share: config, pool, services, keys; per-request state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import Config
from ..credentials.authn import CredentialAuthenticator
from ..credentials.service import CredentialService
from ..db.database import Database
from ..messaging.service import MessagingService
from ..networking.service import NetworkingService
from ..notifications.service import NotificationService
from ..users.service import UserService

if TYPE_CHECKING:
    from ..symphony.authn import CertificateAuthenticator
    from ..symphony.connections import SymphonyConnections
    from ..symphony.service import CompanyCertService
    from .auth import TokenVerifier
    from .client_tls import ClientCertTls
    from .pod_certificate import PodCertificate
    from .signing_keys import SigningKeys
    from .streaming import WholeListGate


@dataclass(frozen=True)
class ApiServices:
    """The domain services the REST API calls (the same instances the rest of the bridge uses)."""

    users: UserService
    messaging: MessagingService
    networking: NetworkingService
    notifications: NotificationService
    credentials: CredentialService | None = None
    credential_auth: CredentialAuthenticator | None = None


@dataclass(frozen=True)
class ApiContext:
    config: Config
    db: Database
    services: ApiServices
    verifier: TokenVerifier
    signing_key: SigningKeys | None
    version: str
    company_certs: CompanyCertService
    cert_auth: CertificateAuthenticator
    #: ``/pod``'s connection calls (numeric user ids) over the networking service.
    symphony: SymphonyConnections
    #: How many whole lists (``pageNumber=0``) may be written at once (``api.whole_lists``).
    whole_lists: WholeListGate
    #: The TLS listener's context (``api.tls``), None without one.
    client_tls: ClientCertTls | None = None
    #: The self-signed certificate over the signing key (None without a signing key).
    pod_cert: PodCertificate | None = None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as.

    ``user_id`` is the network user the request acts for: the token's subject, or, for an
    administrator's token with ``?asUserId=``, that user.
    """

    token_user_id: uuid.UUID
    user_id: uuid.UUID
    is_admin: bool
    #: The credential the request was authenticated with (API key, Basic, or a token issued to
    #: an OAuth client), if any.
    credential_id: uuid.UUID | None = None
    #: The token's session (its ``sid`` claim, else its ``jti``), when it names one.
    session_id: str | None = None
    #: The token's ``name`` claim, when it has one.
    name: str | None = None
    #: The token itself (``/currentuser`` answers it); never in a repr.
    token: str = field(default="", repr=False)


def _request_key(name: str, kind: type) -> Any:
    """A typed request key where aiohttp has them (3.13+), a namespaced string before."""
    factory = getattr(web, "RequestKey", None)
    return factory(name, kind) if factory is not None else f"bridge.api.{name}"


# Per-request state, kept on the aiohttp request under these keys.
_PRINCIPAL = _request_key("principal", Principal)
_STARTED = _request_key("started", float)
_REQUEST_ID = _request_key("request_id", str)


def set_principal(request: web.Request, principal: Principal) -> None:
    request[_PRINCIPAL] = principal


def principal_of(request: web.Request) -> Principal:
    """The authenticated principal (set by the auth middleware)."""
    principal = request.get(_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise RuntimeError("route served without the auth middleware")
    return principal


def maybe_principal(request: web.Request) -> Principal | None:
    principal = request.get(_PRINCIPAL)
    return principal if isinstance(principal, Principal) else None


def set_started(request: web.Request, started: float, request_id: str) -> None:
    request[_STARTED] = started
    request[_REQUEST_ID] = request_id


def started_of(request: web.Request) -> tuple[float | None, str | None]:
    return request.get(_STARTED), request.get(_REQUEST_ID)
