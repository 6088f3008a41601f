"""The seed's credentials routes, under ``/v1/credentials``: list and create in an account,
read, replace (PUT), patch (JSON Patch) and delete one, and look one up by id alone.

Bodies and answers are the msgspec shapes of :mod:`bridge.credentials.models`, in
``{"result": ...}``; errors are RFC 9457 problem details. Unknown query parameters and body
members are refused, naming them.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

import msgspec
from aiohttp import web

from ..credentials.listing import parse_list_query
from ..credentials.models import (
    CredentialCreate,
    CredentialList,
    CredentialResult,
    CredentialUpdate,
    PatchOperation,
    render,
)
from ..credentials.patching import operations_of
from ..credentials.service import Actor, CredentialService
from ..errors import BadRequest, Unavailable
from ..ids import parse_uuid
from .context import ApiContext, principal_of

T = TypeVar("T")

PREFIX = "/v1/credentials"
#: Query parameters every route takes (read by the authentication middleware).
_AUTH_PARAMS = frozenset({"access_token", "asUserId"})
_LIST_PARAMS = _AUTH_PARAMS | {"limit", "start_after", "order", "filter"}
_JSON_TYPES = ("application/json", "application/json-patch+json")
_encoder = msgspec.json.Encoder()


def _check_params(request: web.Request, allowed: frozenset[str]) -> None:
    for name in request.query:
        if name not in allowed:
            raise BadRequest(f"unknown query parameter {name!r}")
    for name in ("limit", "start_after"):
        if len(request.query.getall(name, [])) > 1:
            raise BadRequest(f"{name} is given more than once")


async def _body(request: web.Request, kind: type[T]) -> T:
    if request.content_type not in _JSON_TYPES:
        raise BadRequest(f"the body must be application/json, not {request.content_type}")
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _json(value: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


class CredentialsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        one = "/{ownerId}/{credentialId}"
        return [
            web.get("/lookup/{credentialId}", self.lookup, allow_head=False),
            web.get("/{ownerId}", self.list_credentials, allow_head=False),
            web.post("/{ownerId}", self.create),
            web.get(one, self.get, allow_head=False),
            web.put(one, self.replace),
            web.patch(one, self.patch),
            web.delete(one, self.delete),
        ]

    def _service(self) -> CredentialService:
        service = self._ctx.services.credentials
        if service is None:
            raise Unavailable("credentials are not enabled on this bridge")
        return service

    @staticmethod
    def _actor(request: web.Request) -> Actor:
        principal = principal_of(request)
        return Actor(principal.user_id, principal.is_admin, principal.credential_id is not None)

    @staticmethod
    def _ids(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
        return (
            parse_uuid(request.match_info["ownerId"], "ownerId"),
            parse_uuid(request.match_info["credentialId"], "credentialId"),
        )

    async def list_credentials(self, request: web.Request) -> web.Response:
        _check_params(request, _LIST_PARAMS)
        owner_id = parse_uuid(request.match_info["ownerId"], "ownerId")
        query = parse_list_query(
            request.query.get("limit"),
            request.query.get("start_after"),
            request.query.getall("order", []),
            request.query.getall("filter", []),
        )
        found = await self._service().list_credentials(self._actor(request), owner_id, query)
        return _json(CredentialList([render(c) for c in found]))

    async def create(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        owner_id = parse_uuid(request.match_info["ownerId"], "ownerId")
        body = await _body(request, CredentialCreate)
        credential, generated = await self._service().create(self._actor(request), owner_id, body)
        response = _json(CredentialResult(render(credential, generated)), status=201)
        response.headers["Location"] = f"{PREFIX}/{owner_id}/{credential.id}"
        response.headers["Cache-Control"] = "no-store"  # it may carry a generated secret
        return response

    async def get(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        owner_id, credential_id = self._ids(request)
        credential = await self._service().get(self._actor(request), owner_id, credential_id)
        return _json(CredentialResult(render(credential)))

    async def lookup(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        credential_id = parse_uuid(request.match_info["credentialId"], "credentialId")
        credential = await self._service().lookup(self._actor(request), credential_id)
        return _json(CredentialResult(render(credential)))

    async def replace(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        owner_id, credential_id = self._ids(request)
        body = await _body(request, CredentialUpdate)
        credential = await self._service().replace_credential(
            self._actor(request), owner_id, credential_id, body
        )
        return _json(CredentialResult(render(credential)))

    async def patch(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        owner_id, credential_id = self._ids(request)
        operations = operations_of(await _body(request, list[PatchOperation]))
        credential = await self._service().patch(
            self._actor(request), owner_id, credential_id, operations
        )
        return _json(CredentialResult(render(credential)))

    async def delete(self, request: web.Request) -> web.Response:
        _check_params(request, _AUTH_PARAMS)
        owner_id, credential_id = self._ids(request)
        await self._service().delete(self._actor(request), owner_id, credential_id)
        return web.Response(status=204)
