"""The ``/admin`` status page: a sub-application with its own auth and HTML errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from .. import __version__
from ..api.app import build_verifier
from ..api.auth import TokenVerifier, is_admin
from ..appservice.gap_store import GapStore
from ..config import Config
from ..db.database import Database
from ..errors import BridgeError, Forbidden, Unauthorized
from ..matrix.outbox.intents import Intents
from ..metrics import Metrics
from .admin_auth import SESSION_COOKIE, AdminAuth, csrf_matches
from .admin_page import PageData, esc, render
from .dead_letters import DeadLetters
from .status_store import StatusStore

log = logging.getLogger(__name__)

PREFIX = "/admin"
_LETTERS_SHOWN = 50
_GAPS_SHOWN = 20
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CSRF_KEY = web.RequestKey("admin_csrf", str) if hasattr(web, "RequestKey") else "admin_csrf"


def _verifier(config: Config) -> TokenVerifier | None:
    verifier, _ = build_verifier(config)
    return verifier if verifier.configured else None


class AdminPage:
    def __init__(
        self,
        config: Config,
        db: Database,
        metrics: Metrics,
        intents: Intents,
        status: StatusStore,
        gaps: GapStore,
        dead_letters: DeadLetters,
    ) -> None:
        self._config = config
        self._db = db
        self._metrics = metrics
        self._intents = intents
        self._status = status
        self._gaps = gaps
        self._letters = dead_letters
        self._auth = AdminAuth(db, config.admin)
        self._verifier = _verifier(config)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate])
        app.add_routes(
            [
                web.get("", self.page),
                web.get("/login", self.login),
                web.post("/ping", self.ping),
                web.post("/logout", self.logout),
                web.post("/dead-letters/{letter_id:[0-9]{1,18}}/replay", self.replay),
                web.post("/dead-letters/{letter_id:[0-9]{1,18}}/drop", self.drop),
            ]
        )
        return app

    # --- middlewares ------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BridgeError as exc:
            response = self._message(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers.update(_SECURITY_HEADERS)
                raise
            response = self._message(exc.status, exc.reason)
        response.headers.update(_SECURITY_HEADERS)
        return response

    @staticmethod
    def _message(status: int, text: str) -> web.Response:
        body = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Bridge status'
            f'</title></head><body><h1>Bridge status</h1><p id="error">{esc(text)}</p>'
            "<p>Open a new link from <code>bridge admin-link -c config.yaml</code>, or use an "
            "admin token.</p></body></html>"
        )
        return web.Response(status=status, text=body, content_type="text/html")

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == f"{PREFIX}/login":
            return await handler(request)
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            self._check_admin_jwt(bearer.removeprefix("Bearer ").strip())
            request[_CSRF_KEY] = ""  # not a cookie: nothing a forged form could carry
            return await handler(request)
        query_token = request.query.get("access_token")
        if query_token is not None and request.method == "GET":
            self._check_admin_jwt(query_token)
            session = await self._auth.open_session()
            return self._enter(request, session.secret, None)
        secret = request.cookies.get(SESSION_COOKIE)
        csrf = await self._auth.session_csrf(secret) if secret else None
        if csrf is None:
            raise Unauthorized("not logged in, or the session expired")
        if request.method == "POST":
            form = await request.post()
            given = form.get("csrf")
            if not csrf_matches(csrf, given if isinstance(given, str) else None):
                raise Forbidden("the form's CSRF token does not match this session")
        request[_CSRF_KEY] = csrf
        return await handler(request)

    def _check_admin_jwt(self, token: str) -> None:
        if self._verifier is None:
            raise Unauthorized("admin tokens are not configured (api.jwt)")
        if not is_admin(self._verifier.verify(token)):
            raise Forbidden("the token does not carry the admin role")

    def _enter(self, request: web.Request, secret: str, notice: str | None) -> web.Response:
        """Set the session cookie and go to the page (dropping any token from the URL)."""
        location = PREFIX + (f"?{urlencode({'notice': notice})}" if notice else "")
        response = web.HTTPSeeOther(location)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            path=PREFIX,
            max_age=int(self._config.admin.session_ttl),
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
        raise response

    # --- handlers ---------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        secret = request.query.get("token", "")
        session = await self._auth.use_link(secret) if 0 < len(secret) <= 128 else None
        if session is None:
            raise Unauthorized("this link is unknown, used already or expired")
        log.info("Admin session opened with a one-time link")
        return self._enter(request, session.secret, None)

    async def logout(self, request: web.Request) -> web.Response:
        secret = request.cookies.get(SESSION_COOKIE)
        if secret:
            await self._auth.close_session(secret)
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        raise response

    async def page(self, request: web.Request) -> web.Response:
        refresh = request.query.get("refresh")
        async with self._db.acquire() as conn:
            state = await self._status.get_state(conn)
            gaps = await self._gaps.list_recent(conn, _GAPS_SHOWN)
        letters = await self._letters.list_letters(limit=_LETTERS_SHOWN)
        ping = self._metrics.last_ping()
        data = PageData(
            bot=self._config.bot_mxid,
            homeserver=self._config.homeserver.address,
            version=__version__,
            state=state,
            gaps=gaps,
            letters=letters,
            last_ping_at=datetime.fromtimestamp(ping[0], UTC) if ping else None,
            last_ping_seconds=ping[1] if ping else None,
            rest_by_class=self._metrics.rest_by_class(),
            csrf=request[_CSRF_KEY],
            base=PREFIX,
            notice=request.query.get("notice", "")[:300] or None,
            refresh=max(int(refresh), 2) if refresh and refresh.isdigit() else None,
        )
        return web.Response(text=render(data), content_type="text/html")

    def _done(self, notice: str) -> web.Response:
        raise web.HTTPSeeOther(f"{PREFIX}?{urlencode({'notice': notice})}")

    async def replay(self, request: web.Request) -> web.Response:
        letter_id = int(request.match_info["letter_id"])
        (result,) = await self._letters.replay([letter_id])
        detail = f": {result.detail}" if result.detail else ""
        log.info("Admin page: dead letter %d %s%s", letter_id, result.outcome, detail)
        return self._done(f"Dead letter {letter_id}: {result.outcome}{detail}")

    async def drop(self, request: web.Request) -> web.Response:
        letter_id = int(request.match_info["letter_id"])
        dropped = await self._letters.drop([letter_id])
        return self._done(f"Dead letter {letter_id}: {'dropped' if dropped else 'not found'}")

    async def ping(self, request: web.Request) -> web.Response:
        try:
            millis = await self._intents.ping_homeserver(self._config.appservice.id)
        except Exception as exc:  # any failure is the answer shown to the admin
            log.warning("Admin page: homeserver ping failed: %s", exc)
            return self._done(f"Ping failed: {exc}"[:300])
        self._metrics.ping_succeeded(millis)
        return self._done(f"Ping round trip: {millis} ms")


def mount_admin(
    app: web.Application,
    config: Config,
    db: Database,
    metrics: Metrics,
    intents: Intents,
    status: StatusStore,
    gaps: GapStore,
    *,
    wake: Callable[[], None] | None = None,
) -> None:
    """Mount the status page at ``/admin`` (replays wake the workers through ``wake``)."""
    letters = DeadLetters(db, wake=wake)
    page = AdminPage(config, db, metrics, intents, status, gaps, letters)
    app.add_subapp(PREFIX, page.app())
