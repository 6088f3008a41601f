"""``/pod/v1/companycert`` and ``/pod/v2/companycert/create``: the company certificates
(administrators only), Symphony's eight operations. Fingerprints are SHA-256 of the DER
encoding in lowercase hex (either case is accepted in paths and bodies)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import BadRequest, Forbidden
from ..symphony.certs import normal_fingerprint
from ..symphony.models import POD_MANAGED, CertStatus, CertType
from .context import ApiContext, principal_of
from .operations import Answer, NoBody, Operation, Reply
from .queries import CertPageQuery, Query
from .symphony_shapes import (
    CompanyCert,
    CompanyCertAttributes,
    CompanyCertDetail,
    CompanyCertInfoItem,
    CompanyCertType,
    Fingerprint,
    StringId,
    SuccessResponse,
)

ENTITLEMENT = "The user lacks the required entitlement to perform this operation"
_FP = (("fingerPrint", Fingerprint),)


def _fingerprint(value: str, name: str = "fingerPrint") -> str:
    normal = normal_fingerprint(value)
    if normal is None:
        raise BadRequest(f"{name} must be a SHA-256 fingerprint (64 hexadecimal digits)")
    return normal


class CompanyCertApi:
    def __init__(self, ctx: ApiContext) -> None:
        self._db = ctx.db
        self._users = ctx.services.users
        self._certs = ctx.company_certs

    def operations(self) -> list[Operation[Any, Any]]:
        return [replace(op, tags=("companycert",)) for op in self._operations()]

    def _operations(self) -> list[Operation[Any, Any]]:
        info_list = Answer(list[CompanyCertInfoItem])
        detail = Answer(CompanyCertDetail)
        ok = Answer(SuccessResponse)
        return [
            Operation("get", "/v1/companycert/list", "symphonyListCompanyCerts",
                      "Symphony: all company certificates", self.list_all, CertPageQuery,
                      NoBody, info_list),
            Operation("post", "/v2/companycert/create", "symphonyCreateCompanyCert",
                      "Symphony: store a company certificate (expired ones refused)",
                      self.create, Query, CompanyCert, detail, errors=(409,)),
            Operation("post", "/v1/companycert/delete", "symphonyDeleteCompanyCert",
                      "Symphony: delete a company certificate", self.delete, Query, StringId,
                      ok),
            Operation("get", "/v1/companycert/{fingerPrint}/get", "symphonyGetCompanyCert",
                      "Symphony: a company certificate's details", self.get, Query, NoBody,
                      detail, path_types=_FP),
            Operation("post", "/v1/companycert/{fingerPrint}/update",
                      "symphonyUpdateCompanyCert",
                      "Symphony: change a company certificate's name, type or status",
                      self.update, Query, CompanyCertAttributes, ok, path_types=_FP),
            Operation("get", "/v1/companycert/{fingerPrint}/issuedBy",
                      "symphonyCompanyCertsIssuedBy",
                      "Symphony: the stored certificates this one issued",
                      self.issued_by, CertPageQuery, NoBody, info_list, path_types=_FP),
            Operation("get", "/v1/companycert/podmanaged/list", "symphonyListPodManagedCerts",
                      "Symphony: the pod-managed certificates (OPERATIONSSIGNING, "
                      "OPERATIONSUSER)", self.pod_managed, CertPageQuery, NoBody, info_list),
            Operation("post", "/v1/companycert/type/list", "symphonyListCompanyCertsByType",
                      "Symphony: the company certificates of the given types",
                      self.by_type, CertPageQuery, list[CompanyCertType], info_list),
        ]  # fmt: skip

    async def _admin(self, request: web.Request) -> int:
        """The calling administrator's numeric id (403 for anyone else)."""
        principal = principal_of(request)
        if not principal.is_admin:
            raise Forbidden(ENTITLEMENT)
        async with self._db.acquire() as conn:
            return (await self._users.get(conn, principal.token_user_id)).number

    async def list_all(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        await self._admin(request)
        async with self._db.acquire() as conn:
            found = await self._certs.list_certs(conn, skip=query.skip, limit=query.limit)
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def pod_managed(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        await self._admin(request)
        async with self._db.acquire() as conn:
            found = await self._certs.list_certs(
                conn, types=POD_MANAGED, skip=query.skip, limit=query.limit
            )
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def by_type(
        self, request: web.Request, query: CertPageQuery, body: list[CompanyCertType]
    ) -> Reply:
        await self._admin(request)
        if not body:
            raise BadRequest("give at least one certificate type")
        types = list(dict.fromkeys(CertType(t.type) for t in body))
        async with self._db.acquire() as conn:
            found = await self._certs.list_certs(
                conn, types=types, skip=query.skip, limit=query.limit
            )
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def create(self, request: web.Request, _: Query, body: CompanyCert) -> Reply:
        admin = await self._admin(request)
        attributes = body.attributes
        if attributes.type is UNSET or attributes.status is UNSET:
            raise BadRequest("attributes.type and attributes.status are required")
        async with self._db.transaction() as conn:
            stored = await self._certs.create(
                conn,
                body.pem,
                name=None if attributes.name is UNSET else attributes.name,
                type_=CertType(attributes.type.type),
                status=CertStatus(attributes.status.type),
                admin=admin,
            )
        return Reply(CompanyCertDetail.of(stored))

    async def delete(self, request: web.Request, _: Query, body: StringId) -> Reply:
        await self._admin(request)
        async with self._db.transaction() as conn:
            await self._certs.delete(conn, _fingerprint(body.id, "id"))
        return Reply(SuccessResponse("TEXT", "OK"))

    async def get(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        await self._admin(request)
        fingerprint = _fingerprint(request.match_info["fingerPrint"])
        async with self._db.acquire() as conn:
            found = await self._certs.get(conn, fingerprint)
        return Reply(CompanyCertDetail.of(found))

    async def update(self, request: web.Request, _: Query, body: CompanyCertAttributes) -> Reply:
        admin = await self._admin(request)
        fingerprint = _fingerprint(request.match_info["fingerPrint"])
        if body.name is UNSET and body.type is UNSET and body.status is UNSET:
            raise BadRequest("nothing to update: give at least one of name, type, status")
        async with self._db.transaction() as conn:
            await self._certs.update(
                conn,
                fingerprint,
                name=None if body.name is UNSET else body.name,
                type_=None if body.type is UNSET else CertType(body.type.type),
                status=None if body.status is UNSET else CertStatus(body.status.type),
                admin=admin,
            )
        return Reply(SuccessResponse("TEXT", "OK"))

    async def issued_by(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        await self._admin(request)
        fingerprint = _fingerprint(request.match_info["fingerPrint"])
        async with self._db.acquire() as conn:
            found = await self._certs.issued_by(
                conn, fingerprint, skip=query.skip, limit=query.limit
            )
        return Reply([CompanyCertInfoItem.of(c) for c in found])
