"""``/pod/v1/companycert`` and ``/pod/v2/companycert/create``: the company certificates
(administrators only), Symphony's eight operations. Fingerprints are SHA-256 of the DER
encoding in lowercase hex (either case is accepted in paths and bodies)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from msgspec import UNSET

from ..errors import BadRequest
from ..symphony.certs import normal_fingerprint
from ..symphony.models import CertStatus, CertType
from ..symphony.service import CertAdmin
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

_FP = (("fingerPrint", Fingerprint),)


def _fingerprint(value: str, name: str = "fingerPrint") -> str:
    normal = normal_fingerprint(value)
    if normal is None:
        raise BadRequest(f"{name} must be a SHA-256 fingerprint (64 hexadecimal digits)")
    return normal


class CompanyCertApi:
    def __init__(self, ctx: ApiContext) -> None:
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

    @staticmethod
    def _admin(request: web.Request) -> CertAdmin:
        principal = principal_of(request)
        return CertAdmin(principal.token_user_id, principal.is_admin)

    async def list_all(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        found = await self._certs.list_page(
            self._admin(request), skip=query.skip, limit=query.limit
        )
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def pod_managed(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        found = await self._certs.pod_managed_page(
            self._admin(request), skip=query.skip, limit=query.limit
        )
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def by_type(
        self, request: web.Request, query: CertPageQuery, body: list[CompanyCertType]
    ) -> Reply:
        found = await self._certs.list_page(
            self._admin(request),
            types=[CertType(t.type) for t in body],
            skip=query.skip,
            limit=query.limit,
        )
        return Reply([CompanyCertInfoItem.of(c) for c in found])

    async def create(self, request: web.Request, _: Query, body: CompanyCert) -> Reply:
        attributes = body.attributes
        stored = await self._certs.store(
            self._admin(request),
            body.pem,
            name=None if attributes.name is UNSET else attributes.name,
            type_=None if attributes.type is UNSET else CertType(attributes.type.type),
            status=None if attributes.status is UNSET else CertStatus(attributes.status.type),
        )
        return Reply(CompanyCertDetail.of(stored))

    async def delete(self, request: web.Request, _: Query, body: StringId) -> Reply:
        await self._certs.remove(self._admin(request), _fingerprint(body.id, "id"))
        return Reply(SuccessResponse("TEXT", "OK"))

    async def get(self, request: web.Request, _: Query, __: NoBody) -> Reply:
        fingerprint = _fingerprint(request.match_info["fingerPrint"])
        found = await self._certs.details(self._admin(request), fingerprint)
        return Reply(CompanyCertDetail.of(found))

    async def update(self, request: web.Request, _: Query, body: CompanyCertAttributes) -> Reply:
        await self._certs.change(
            self._admin(request),
            _fingerprint(request.match_info["fingerPrint"]),
            name=None if body.name is UNSET else body.name,
            type_=None if body.type is UNSET else CertType(body.type.type),
            status=None if body.status is UNSET else CertStatus(body.status.type),
        )
        return Reply(SuccessResponse("TEXT", "OK"))

    async def issued_by(self, request: web.Request, query: CertPageQuery, _: NoBody) -> Reply:
        fingerprint = _fingerprint(request.match_info["fingerPrint"])
        found = await self._certs.issued_by_page(
            self._admin(request), fingerprint, skip=query.skip, limit=query.limit
        )
        return Reply([CompanyCertInfoItem.of(c) for c in found])
