"""The REST API as aiohttp sub-applications, one per service prefix.

aiohttp cannot mount a sub-application at the root, and the API spans several top-level
prefixes, so :func:`api_apps` returns one sub-application per prefix and :func:`mount_api`
adds them all to the bridge's application. Each has its own error middleware (the reference's error
body; Symphony's on ``/pod``) and, except the public ones, the JWT middleware; the Matrix-facing
middleware leaves sub-application requests alone.
"""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..config import Config, ConfigError
from ..db.database import Database
from .auth import TokenVerifier, auth_middleware
from .context import ApiContext, ApiServices
from .envelope import Envelope, ErrorRenderer, error_middleware, json_response, network_error
from .keys import KeyFileError, SigningKey
from .messaging import MessagingApi
from .networking import NetworkingApi
from .notification import NotificationApi
from .openapi import OPENAPI_PATH, build_openapi
from .publickey import PublicKeyApi
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


def _sub_app(
    ctx: ApiContext,
    routes: list[web.RouteDef],
    *,
    public: bool = False,
    symphony: bool = False,
) -> web.Application:
    render: ErrorRenderer = symphony_error if symphony else network_error
    middlewares = [error_middleware(render)]
    if not public:
        middlewares.append(auth_middleware(ctx, symphony=symphony))
    app = web.Application(middlewares=middlewares)
    app.add_routes(routes)
    return app


def api_apps(
    config: Config, db: Database, services: ApiServices
) -> list[tuple[str, web.Application]]:
    """The REST API's sub-applications with the prefix each is mounted at."""
    ctx = build_context(config, db, services)
    envelope = Envelope(ctx.version)
    document = build_openapi(config.api.token_name, ctx.version)

    async def openapi(_: web.Request) -> web.Response:
        return json_response(document)

    return [
        ("/messaging-api", _sub_app(ctx, MessagingApi(ctx, envelope).routes())),
        ("/networking-api", _sub_app(ctx, NetworkingApi(ctx, envelope).routes())),
        ("/notification-api", _sub_app(ctx, NotificationApi(ctx, envelope).routes())),
        ("/pod", _sub_app(ctx, SymphonyApi(ctx).routes(), symphony=True)),
        ("/auth-api", _sub_app(ctx, PublicKeyApi(ctx).routes(), public=True)),
        (OPENAPI_PATH, _sub_app(ctx, [web.get("", openapi, allow_head=False)], public=True)),
    ]


def mount_api(app: web.Application, config: Config, db: Database, services: ApiServices) -> None:
    """Mount every REST API sub-application on the bridge's application."""
    for prefix, sub_app in api_apps(config, db, services):
        app.add_subapp(prefix, sub_app)
