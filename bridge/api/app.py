"""The REST API as aiohttp sub-applications, one per seed service prefix.

aiohttp cannot mount a sub-application at the root, and the API spans several top-level
prefixes, so :func:`api_apps` returns one sub-application per prefix and :func:`mount_api`
adds them all to the bridge's application. Each has its own error middleware (the seed's error
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
from .credentials import PREFIX as CREDENTIALS_PREFIX
from .credentials import CredentialsApi
from .envelope import Envelope, ErrorRenderer, error_middleware, json_response, seed_error
from .keys import KeyFileError
from .messaging import MessagingApi
from .networking import NetworkingApi
from .notification import NotificationApi
from .oauth import TokenApi
from .openapi import OPENAPI_PATH, build_openapi
from .problems import problem_middleware
from .publickey import PublicKeyApi
from .signing_keys import SigningKeys
from .symphony import SymphonyApi, symphony_error


def build_context(config: Config, db: Database, services: ApiServices) -> ApiContext:
    """Load the key material (failing fast with the dotted config key) and bundle the rest."""
    jwt_config = config.api.jwt
    try:
        signing = SigningKeys.load(jwt_config.private_key_file, jwt_config.key_dir)
    except KeyFileError as exc:
        key = "private_key_file" if jwt_config.private_key_file is not None else "key_dir"
        raise ConfigError(f"api.jwt.{key}", str(exc)) from None
    verifier = TokenVerifier(jwt_config, signing)
    return ApiContext(config, db, services, verifier, signing, __version__)


def _sub_app(
    ctx: ApiContext,
    routes: list[web.RouteDef],
    *,
    public: bool = False,
    symphony: bool = False,
    problems: bool = False,
) -> web.Application:
    render: ErrorRenderer = symphony_error if symphony else seed_error
    middlewares = [problem_middleware() if problems else error_middleware(render)]
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
        (
            "/auth-api",
            _sub_app(ctx, [*PublicKeyApi(ctx).routes(), *TokenApi(ctx).routes()], public=True),
        ),
        ("/.well-known", _sub_app(ctx, PublicKeyApi(ctx).jwks_routes(), public=True)),
        (CREDENTIALS_PREFIX, _sub_app(ctx, CredentialsApi(ctx).routes(), problems=True)),
        (OPENAPI_PATH, _sub_app(ctx, [web.get("", openapi, allow_head=False)], public=True)),
    ]


def mount_api(app: web.Application, config: Config, db: Database, services: ApiServices) -> None:
    """Mount every REST API sub-application on the bridge's application."""
    for prefix, sub_app in api_apps(config, db, services):
        app.add_subapp(prefix, sub_app)
