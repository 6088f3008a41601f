"""The REST API as aiohttp sub-applications, one per seed service prefix.

aiohttp cannot mount a sub-application at the root, and the API spans several top-level
prefixes, so :func:`api_apps` returns one sub-application per prefix and :func:`mount_api`
adds them all to the bridge's application. Each has the error middleware (the seed's error
body; Symphony's on ``/pod``) and, except the public ones, the JWT middleware; the Matrix-facing
middleware leaves sub-application requests alone.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import __version__
from ..config import Config, ConfigError
from ..db.database import Database
from ..http_errors import error_middleware
from .auth import TokenVerifier, auth_middleware
from .context import ApiContext, ApiServices
from .envelope import SEED_HTTP_MESSAGES, seed_error, start_request
from .keys import KeyFileError, SigningKey
from .messaging import MessagingApi
from .networking import NetworkingApi
from .notification import NotificationApi
from .openapi import OPENAPI_PATH, build_openapi
from .operations import Answer, NoBody, Operation, Reply, Service
from .publickey import PublicKeyApi
from .queries import PublicQuery
from .session import session_operations
from .symphony import SymphonyApi, symphony_error


def build_context(config: Config, db: Database, services: ApiServices) -> ApiContext:
    """Load the key material (failing fast with the dotted config key) and bundle the rest."""
    jwt_config = config.api.jwt
    signing = None
    if jwt_config.private_key_file is not None:
        try:
            signing = SigningKey(jwt_config.private_key_file)
        except KeyFileError as exc:
            raise ConfigError("api.jwt.private_key_file", str(exc)) from None
    verifier = TokenVerifier(jwt_config, signing if jwt_config.algorithm == "RS256" else None)
    return ApiContext(config, db, services, verifier, signing, __version__)


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
        Service("/pod", SymphonyApi(ctx).operations(), symphony=True),
        Service("/auth-api", PublicKeyApi(ctx).operations(), public=True),
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
    render = symphony_error if service.symphony else seed_error
    middlewares = [error_middleware(render, messages=SEED_HTTP_MESSAGES, prepare=start_request)]
    if not service.public:
        middlewares.append(auth_middleware(ctx, symphony=service.symphony))
    app = web.Application(middlewares=middlewares)
    app.add_routes([op.route(ctx.version) for op in service.operations])
    return app


def api_apps(
    config: Config, db: Database, services: ApiServices
) -> list[tuple[str, web.Application]]:
    """The REST API's sub-applications with the prefix each is mounted at."""
    ctx = build_context(config, db, services)
    return [(service.prefix, _sub_app(ctx, service)) for service in api_services(ctx)]


def mount_api(app: web.Application, config: Config, db: Database, services: ApiServices) -> None:
    """Mount every REST API sub-application on the bridge's application."""
    for prefix, sub_app in api_apps(config, db, services):
        app.add_subapp(prefix, sub_app)
