"""The seed's credentials routes, under ``/v1/credentials``: list and create in an account,
read, replace (PUT), patch (JSON Patch) and delete one, and look one up by id alone.

Operations of the route table (:mod:`.operations`): the query, body and answer types are the
msgspec shapes of :mod:`bridge.credentials.models`, answers are ``{"result": ...}``, errors
RFC 9457 problem details; unknown query parameters and body members are refused, naming them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from ..credentials.listing import (
    DEFAULT_LIMIT,
    FILTER_OPS,
    MAX_LIMIT,
    ORDER_FIELDS,
    TEXT_FIELDS,
    TIME_FIELDS,
    ListParameters,
)
from ..credentials.models import (
    NAME_PATTERN,
    CredentialCreate,
    CredentialList,
    CredentialResult,
    CredentialUpdate,
    PatchOperation,
    render,
)
from ..credentials.service import Actor, CredentialService
from ..errors import Unavailable
from .context import ApiContext, principal_of
from .decoding import path_id
from .operations import Answer, NoBody, Operation, Reply
from .queries import Query

PREFIX = "/v1/credentials"
FILTER_FIELDS = TEXT_FIELDS + TIME_FIELDS
#: ``lookup`` is no owner: without this, ``/lookup/{id}`` would also be an owner's credential.
_OWNER = "/{ownerId:(?!lookup(?:/|$))[^/]+}"
_ONE = f"{_OWNER}/{{credentialId}}"
_ORDER_PATTERN = f"^({'|'.join(ORDER_FIELDS)})(\\[(asc|desc)\\])?$"
_FILTER_PATTERN = (
    f"^({'|'.join(re.escape(f) for f in FILTER_FIELDS)})\\[({'|'.join(FILTER_OPS)})\\]"
    "[^\\x00]*$"  # the value: any text (no U+0000, which no column holds)
)


class CredentialListQuery(Query):
    limit: (
        Annotated[
            int,
            Meta(ge=1, le=MAX_LIMIT, description=f"credentials per page (default {DEFAULT_LIMIT})"),
        ]
        | UnsetType
    ) = UNSET
    start_after: (
        Annotated[
            str,
            Meta(pattern=NAME_PATTERN, description="the name the page starts after"),
        ]
        | UnsetType
    ) = UNSET
    order: (
        Annotated[
            list[Annotated[str, Meta(pattern=_ORDER_PATTERN)]],
            Meta(description=f"{', '.join(ORDER_FIELDS)}, each optionally [asc] or [desc]"),
        ]
        | UnsetType
    ) = UNSET
    filter: (
        Annotated[
            list[Annotated[str, Meta(pattern=_FILTER_PATTERN)]],
            Meta(description=f"field[op]value, op one of {', '.join(FILTER_OPS)}; ANDed"),
        ]
        | UnsetType
    ) = UNSET


class CredentialsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def operations(self) -> list[Operation[Any, Any]]:
        return [replace(op, tags=("credentials",)) for op in self._operations()]

    def _operations(self) -> list[Operation[Any, Any]]:
        return [
            Operation(
                "get", "/lookup/{credentialId}", "lookupCredential", "Lookup Credential",
                self.lookup, Query, NoBody, Answer(CredentialResult), errors=(503,),
            ),
            Operation(
                "get", _OWNER, "listCredentials", "List Credentials",
                self.list_credentials, CredentialListQuery, NoBody, Answer(CredentialList),
                errors=(503,),
            ),
            Operation(
                "post", _OWNER, "createCredential", "Create Credential",
                self.create, Query, CredentialCreate,
                Answer(CredentialResult, status=201), errors=(409, 503),
            ),
            Operation(
                "get", _ONE, "getCredential", "Get Credential",
                self.get, Query, NoBody, Answer(CredentialResult), errors=(503,),
            ),
            Operation(
                "put", _ONE, "updateCredential", "Update Credential",
                self.replace, Query, CredentialUpdate, Answer(CredentialResult),
                errors=(409, 503),
            ),
            Operation(
                "patch", _ONE, "patchCredential", "Patch Credential (JSON Patch, RFC 6902)",
                self.patch, Query, list[PatchOperation], Answer(CredentialResult),
                errors=(409, 503),
            ),
            Operation(
                "delete", _ONE, "deleteCredential", "Delete Credential",
                self.delete, Query, NoBody, Answer(None, status=204), errors=(503,),
            ),
        ]  # fmt: skip

    def _service(self) -> CredentialService:
        service = self._ctx.services.credentials
        if service is None:
            raise Unavailable("credentials are not enabled on this bridge")
        return service

    @staticmethod
    def _actor(request: web.Request) -> Actor:
        principal = principal_of(request)
        return Actor(principal.user_id, principal.is_admin, principal.credential_id is not None)

    async def list_credentials(
        self, request: web.Request, query: CredentialListQuery, _: NoBody
    ) -> Reply:
        parameters = ListParameters(
            limit=None if query.limit is UNSET else query.limit,
            start_after=None if query.start_after is UNSET else query.start_after,
            order=() if query.order is UNSET else query.order,
            filters=() if query.filter is UNSET else query.filter,
        )
        owner_id = path_id(request, "ownerId")
        found = await self._service().list_credentials(self._actor(request), owner_id, parameters)
        return Reply(CredentialList([render(c) for c in found]))

    async def create(self, request: web.Request, _: Query, body: CredentialCreate) -> Reply:
        owner_id = path_id(request, "ownerId")
        credential, generated = await self._service().create(self._actor(request), owner_id, body)
        headers = {
            "Location": f"{PREFIX}/{owner_id}/{credential.id}",
            "Cache-Control": "no-store",  # it may carry a generated secret
        }
        return Reply(CredentialResult(render(credential, generated)), headers=headers)

    async def get(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        owner_id, credential_id = path_id(request, "ownerId"), path_id(request, "credentialId")
        credential = await self._service().get(self._actor(request), owner_id, credential_id)
        return Reply(CredentialResult(render(credential)))

    async def lookup(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        credential_id = path_id(request, "credentialId")
        credential = await self._service().lookup(self._actor(request), credential_id)
        return Reply(CredentialResult(render(credential)))

    async def replace(self, request: web.Request, _: Query, body: CredentialUpdate) -> Reply:
        owner_id, credential_id = path_id(request, "ownerId"), path_id(request, "credentialId")
        credential = await self._service().replace_credential(
            self._actor(request), owner_id, credential_id, body
        )
        return Reply(CredentialResult(render(credential)))

    async def patch(self, request: web.Request, _: Query, body: list[PatchOperation]) -> Reply:
        owner_id, credential_id = path_id(request, "ownerId"), path_id(request, "credentialId")
        credential = await self._service().patch(
            self._actor(request), owner_id, credential_id, body
        )
        return Reply(CredentialResult(render(credential)))

    async def delete(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        owner_id, credential_id = path_id(request, "ownerId"), path_id(request, "credentialId")
        await self._service().delete(self._actor(request), owner_id, credential_id)
        return Reply(None)
