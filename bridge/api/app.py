"""The REST API as aiohttp sub-applications, one per service prefix.

aiohttp cannot mount a sub-application at the root, and the API spans several top-level
prefixes, so :func:`api_apps` returns one sub-application per prefix and :func:`mount_api`
adds them all to the bridge's application. Each has one middleware: the error middleware (the
reference's error body; Symphony's on ``/pod``) running the request guard and, except on the
public ones, the token check; the Matrix-facing middleware leaves sub-application requests alone.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

from .. import __version__
from ..config import Config, ConfigError
from ..db.database import Database
from ..http_errors import error_middleware
from ..symphony.authn import CertificateAuthenticator
from ..symphony.connections import SymphonyConnections
from ..symphony.service import CompanyCertService
from ..symphony.store import CompanyCertStore
from .auth import TokenVerifier, authenticator
from .client_tls import ClientCertTls, ClientTlsListener
from .companycert import CompanyCertApi
from .context import ApiContext, ApiServices
from .credentials import PREFIX as CREDENTIALS_PREFIX
from .credentials import CredentialsApi
from .envelope import HTTP_MESSAGES, network_error, start_request
from .keys import KeyFileError
from .messaging import MessagingApi
from .networking import NetworkingApi
from .notification import NotificationApi
from .oauth import TokenApi
from .openapi import OPENAPI_PATH, build_openapi
from .operations import Answer, NoBody, Operation, Reply, Service
from .pod_certificate import PodCertificate
from .problems import problem_middleware
from .publickey import PublicKeyApi
from .queries import PublicQuery
from .request_guard import request_guard
from .session import session_operations
from .sessionauth import PREFIX as SESSIONAUTH_PREFIX
from .sessionauth import SessionAuthApi
from .signing_keys import SigningKeys
from .streaming import WHOLE_LISTS, WholeListGate
from .symphony import SymphonyApi, symphony_error

CLIENT_TLS = web.AppKey("client_tls", ClientTlsListener)


def build_verifier(config: Config) -> tuple[TokenVerifier, SigningKeys | None]:
    """The token verifier and the bridge's own signing keys, if any (failing fast with the
    dotted config key)."""
    jwt_config = config.api.jwt
    try:
        signing = SigningKeys.load(jwt_config.private_key_file, jwt_config.key_dir)
    except KeyFileError as exc:
        key = "private_key_file" if jwt_config.private_key_file is not None else "key_dir"
        raise ConfigError(f"api.jwt.{key}", str(exc)) from None
    return TokenVerifier(jwt_config, signing), signing


def build_context(config: Config, db: Database, services: ApiServices) -> ApiContext:
    """Load the key material and the TLS listener's (failing fast with the dotted config key)
    and bundle the rest."""
    verifier, signing = build_verifier(config)
    cert_store = CompanyCertStore()
    company_certs = CompanyCertService(db, cert_store, services.users)
    client_tls = None
    if config.api.tls is not None:
        try:
            client_tls = ClientCertTls(config.api.tls)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "api.tls.certificate", f"cannot load the TLS listener's certificate and key: {exc}"
            ) from None
        company_certs.on_stored(client_tls.trust)
    return ApiContext(
        config,
        db,
        services,
        verifier,
        signing,
        __version__,
        company_certs=company_certs,
        cert_auth=CertificateAuthenticator(db, cert_store, services.users),
        symphony=SymphonyConnections(db, services.users, services.networking),
        whole_lists=WholeListGate(config.api.whole_lists),
        client_tls=client_tls,
        pod_cert=None if signing is None else PodCertificate(signing, config.appservice.id),
    )


def api_services(ctx: ApiContext) -> list[Service]:
    """The route table: every operation, by the prefix it is served under."""
    services = [
        Service(
            "/messaging-api", [*MessagingApi(ctx).operations(), *session_operations("messaging")]
        ),
        Service(
            "/networking-api", [*NetworkingApi(ctx).operations(), *session_operations("networking")]
        ),
        Service(
            "/notification-api",
            [*NotificationApi(ctx).operations(), *session_operations("notification")],
        ),
        Service(
            "/pod",
            [*SymphonyApi(ctx).operations(), *CompanyCertApi(ctx).operations()],
            symphony=True,
        ),
        Service(SESSIONAUTH_PREFIX, SessionAuthApi(ctx).operations(), public=True, symphony=True),
        Service(
            "/auth-api",
            [*PublicKeyApi(ctx).operations(), *TokenApi(ctx).operations()],
            public=True,
        ),
        Service("/.well-known", PublicKeyApi(ctx).jwks_operations(), public=True),
        Service(CREDENTIALS_PREFIX, CredentialsApi(ctx).operations(), problems=True),
    ]
    document: dict[str, Any] = {}

    async def openapi(_: web.Request, __: PublicQuery, ___: NoBody) -> Reply:
        return Reply(document)

    meta = Service(
        OPENAPI_PATH,
        [
            Operation(
                "get", "", "openapi", "This document", openapi, PublicQuery, NoBody,
                Answer(dict[str, Any]),
            )
        ],
        public=True,
    )  # fmt: skip
    services.append(meta)
    document.update(build_openapi(services, ctx.config.api.token_name, ctx.version))
    return services


def _sub_app(ctx: ApiContext, service: Service) -> web.Application:
    render = symphony_error if service.symphony else network_error
    routes = [(op, op.route(ctx.version)) for op in service.operations]
    forms = [route.handler for op, route in routes if op.raw_body is not None]
    # The guard and the token check run inside the one error middleware (one layer, not three).
    checks = [request_guard(ctx.config.api, symphony=service.symphony, own_body=forms)]
    if not service.public:
        public = {route.handler for op, route in routes if op.public}
        checks.append(authenticator(ctx, symphony=service.symphony, public=public))
    middleware = (
        problem_middleware(checks)
        if service.problems
        else error_middleware(render, messages=HTTP_MESSAGES, prepare=start_request, checks=checks)
    )
    app = web.Application(middlewares=[middleware])
    app.add_routes([route for _, route in routes])
    app[WHOLE_LISTS] = ctx.whole_lists
    return app


def api_apps(
    config: Config, db: Database, services: ApiServices
) -> list[tuple[str, web.Application]]:
    """The REST API's sub-applications with the prefix each is mounted at."""
    return _api_apps(build_context(config, db, services))


def _api_apps(ctx: ApiContext) -> list[tuple[str, web.Application]]:
    return [(service.prefix, _sub_app(ctx, service)) for service in api_services(ctx)]


def mount_api(app: web.Application, config: Config, db: Database, services: ApiServices) -> None:
    """Mount every REST API sub-application on the bridge's application (and, with
    ``api.tls``, keep its TLS listener's context under :data:`CLIENT_TLS`)."""
    ctx = build_context(config, db, services)
    for prefix, sub_app in _api_apps(ctx):
        app.add_subapp(prefix, sub_app)
    app[WHOLE_LISTS] = ctx.whole_lists  # the same gate, seen from the bridge's application
    if ctx.client_tls is not None:
        app[CLIENT_TLS] = ClientTlsListener(ctx.client_tls, ctx.company_certs)
