"""The homeserver-facing HTTP API (application service API v1, plus legacy paths)."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from .. import strict_json
from ..config import Config
from ..errors import BadRequest, NotFound, TooLarge
from ..matrix.inbox.intake import IntakeService
from .auth import check_hs_token
from .directory import Directory
from .gaps import TxnGapWatch
from .transaction import parse_transaction

log = logging.getLogger(__name__)

PREFIX = "/_matrix/app/v1"
# Used with fullmatch: "$" would also match before a trailing newline.
_TXN_ID_RE = re.compile(r"[\x21-\x7e]{1,255}")
_USER_ID_RE = re.compile(r"@[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9.\-\[\]:]+")
_ALIAS_RE = re.compile(r"#[^\s:]+:[A-Za-z0-9.\-\[\]:]+")


_MAX_FIELD_LENGTH = 255


def _lookup_value(name: str, value: str) -> str:
    """A third-party lookup field as given, or 400 naming it (U+0000, control characters and
    lone surrogates reach neither the database nor a log)."""
    if len(value) > _MAX_FIELD_LENGTH or not value.isprintable():
        shown = name if name.isprintable() and len(name) <= 64 else "a field"
        raise BadRequest(
            f"{shown} must be printable text of at most {_MAX_FIELD_LENGTH} characters",
            errcode="M_INVALID_PARAM",
        )
    return value


def _fields(request: web.Request) -> dict[str, str]:
    """Third-party lookup fields: the query string less the legacy token parameter."""
    return {
        _lookup_value("field name", k): _lookup_value(k, v)
        for k, v in request.query.items()
        if k != "access_token"
    }


class AppServiceAPI:
    """Routes for the homeserver. Every route but health checks needs the hs_token."""

    def __init__(
        self,
        config: Config,
        intake: IntakeService,
        directory: Directory,
        *,
        gaps: TxnGapWatch | None = None,
    ) -> None:
        self._gaps = gaps
        self._config = config
        self._intake = intake
        self._directory = directory
        self._hs_token = config.appservice.hs_token
        self._domain = config.homeserver.domain

    def routes(self) -> list[web.RouteDef]:
        routes = []
        for prefix in (PREFIX, ""):  # "": the legacy unprefixed paths (application service API v1)
            routes += [
                web.put(f"{prefix}/transactions/{{txn_id}}", self.put_transaction),
                web.get(f"{prefix}/users/{{user_id}}", self.get_user),
                web.get(f"{prefix}/rooms/{{alias}}", self.get_room),
            ]
        routes += [
            web.post(f"{PREFIX}/ping", self.ping),
            web.get(f"{PREFIX}/thirdparty/protocol/{{protocol}}", self.get_protocol),
            web.get(f"{PREFIX}/thirdparty/user/{{protocol}}", self.lookup_users),
            web.get(f"{PREFIX}/thirdparty/location/{{protocol}}", self.lookup_locations),
            web.get(f"{PREFIX}/thirdparty/user", self.user_by_mxid),
            web.get(f"{PREFIX}/thirdparty/location", self.location_by_alias),
        ]
        return routes

    def _authenticate(self, request: web.Request) -> None:
        check_hs_token(request, self._hs_token)

    async def _body(self, request: web.Request) -> bytes:
        limit = self._config.appservice.max_body_size
        if request.content_length is not None and request.content_length > limit:
            raise TooLarge(f"request body larger than {limit} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise TooLarge(f"request body larger than {limit} bytes") from None

    async def put_transaction(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        txn_id = request.match_info["txn_id"]
        if not _TXN_ID_RE.fullmatch(txn_id):
            raise BadRequest("malformed transaction id")
        parsed = parse_transaction(txn_id, await self._body(request))
        gaps = self._gaps
        number = gaps.watched_number(txn_id) if gaps is not None else None
        # The next number of the run is stored with the watch's note in one statement...
        stored = await self._intake.receive_next(
            txn_id,
            parsed.body_sha256,
            parsed.events,
            parsed.rejected,
            parsed.body_text,
            next_txn=number,
            gap_grace=gaps.grace if gaps is not None else 0.0,
        )
        if stored is None:
            # ...anything else goes through the watch first, which may refuse it (503) to
            # make the homeserver resend one it skipped.
            assert gaps is not None
            await gaps.admit(txn_id)
            stored = await self._intake.receive(
                txn_id, parsed.body_sha256, parsed.events, parsed.rejected, parsed.body_text
            )
        log.debug(
            "Transaction %s: %d events (%d new), %d rejected, %d to-device (not bridged)",
            txn_id,
            len(parsed.events),
            stored,
            len(parsed.rejected),
            parsed.to_device_count,
        )
        return web.json_response({})

    async def get_user(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user_id = request.match_info["user_id"]
        if not _USER_ID_RE.fullmatch(user_id) or not user_id.endswith(f":{self._domain}"):
            raise NotFound("not a user of this bridge")
        if not await self._directory.query_user(user_id):
            raise NotFound("no such user on the network")
        return web.json_response({})

    async def get_room(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        alias = request.match_info["alias"]
        if not _ALIAS_RE.fullmatch(alias) or not alias.endswith(f":{self._domain}"):
            raise NotFound("not an alias of this bridge")
        if not await self._directory.query_alias(alias):
            raise NotFound("no such conversation on the network")
        return web.json_response({})

    async def ping(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        raw = await self._body(request)
        body: Any = strict_json.loads_bytes(raw) if raw else {}
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        txn = body.get("transaction_id")
        if txn is not None and not isinstance(txn, str):
            raise BadRequest("transaction_id must be a string")
        log.info("Pinged by the homeserver (transaction_id=%r)", txn)
        return web.json_response({})

    def _check_protocol(self, request: web.Request) -> str:
        protocol = request.match_info["protocol"]
        if protocol != self._config.bridge.protocol_id:
            raise NotFound(f"unknown protocol {protocol!r}")
        return protocol

    async def get_protocol(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        self._check_protocol(request)
        return web.json_response(self.protocol_metadata())

    def protocol_metadata(self) -> dict[str, Any]:
        uuid_re = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
        return {
            "user_fields": ["userid"],
            "location_fields": ["conversationid"],
            "icon": "",
            "field_types": {
                "userid": {"regexp": uuid_re, "placeholder": "network user id"},
                "conversationid": {"regexp": uuid_re, "placeholder": "conversation id"},
                "name": {"regexp": ".+", "placeholder": "display name"},
            },
            "instances": [
                {
                    "network_id": self._config.bridge.protocol_id,
                    "desc": "Professional network",
                    "fields": {},
                }
            ],
        }

    async def lookup_users(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        self._check_protocol(request)
        return web.json_response(await self._directory.lookup_users(_fields(request)))

    async def lookup_locations(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        self._check_protocol(request)
        return web.json_response(await self._directory.lookup_locations(_fields(request)))

    async def user_by_mxid(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        user_id = request.query.get("userid")
        if not user_id:
            raise BadRequest("the userid parameter is required", errcode="M_MISSING_PARAM")
        _lookup_value("userid", user_id)
        return web.json_response(await self._directory.user_by_mxid(user_id))

    async def location_by_alias(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        alias = request.query.get("alias")
        if not alias:
            raise BadRequest("the alias parameter is required", errcode="M_MISSING_PARAM")
        _lookup_value("alias", alias)
        return web.json_response(await self._directory.location_by_alias(alias))
