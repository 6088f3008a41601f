"""Symphony's shapes (seed 000, the Pod and Authenticator APIs): numeric user ids, company
certificates, the pod certificate, session tokens and ``SuccessResponse``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from ..symphony.certs import FINGERPRINT_PATTERN, cert_info, load
from ..symphony.models import CompanyCert as StoredCert
from .fields import TEXT_PATTERN, SomeText
from .requests import Body

Fingerprint = Annotated[
    str,
    Meta(
        pattern=FINGERPRINT_PATTERN,
        description="SHA-256 of the certificate's DER encoding, 64 hex digits",
    ),
]
CertTypeName = Literal["USERSIGNING", "USER", "OPERATIONSSIGNING", "OPERATIONSUSER"]
CertStatusName = Literal["TRUSTED", "KNOWN", "REVOKED", "DISABLED"]
Pem = Annotated[
    str, Meta(min_length=1, max_length=65536, pattern=TEXT_PATTERN, description="PEM text")
]


class CompanyCertType(Body):
    type: CertTypeName


class CompanyCertStatus(Body):
    type: CertStatusName


class CompanyCertAttributes(Body):
    name: Annotated[SomeText, Meta(max_length=255)] | UnsetType = UNSET
    type: CompanyCertType | UnsetType = UNSET
    status: CompanyCertStatus | UnsetType = UNSET


class CompanyCert(Body):
    """``v2/create``'s body: the certificate and its attributes (type and status required;
    the name defaults to the certificate's common name)."""

    pem: Pem
    attributes: CompanyCertAttributes


class StringId(Body):
    id: Fingerprint


class NameValuePair(Struct):
    name: str
    value: str


class CertInfoItem(Struct):
    name: str
    attributes: list[NameValuePair]


class CompanyCertInfo(Struct, omit_defaults=True):
    fingerPrint: str
    lastSeen: int
    updatedAt: int
    updatedBy: int
    commonName: str
    expiryDate: int
    issuerFingerPrint: str | UnsetType = UNSET


class CompanyCertAttributesOut(Struct):
    name: str
    type: CompanyCertType
    status: CompanyCertStatus


class CompanyCertInfoItem(Struct):
    companyCertAttributes: CompanyCertAttributesOut
    companyCertInfo: CompanyCertInfo

    @classmethod
    def of(cls, cert: StoredCert) -> CompanyCertInfoItem:
        return cls(_attributes(cert), _info(cert))


class CompanyCertDetail(Struct):
    companyCertAttributes: CompanyCertAttributesOut
    companyCertInfo: CompanyCertInfo
    certInfo: list[CertInfoItem]

    @classmethod
    def of(cls, cert: StoredCert) -> CompanyCertDetail:
        groups = [
            CertInfoItem(name, [NameValuePair(n, v) for n, v in pairs])
            for name, pairs in cert_info(load(cert.pem))
        ]
        return cls(_attributes(cert), _info(cert), groups)


def _ms(value: datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


def _attributes(cert: StoredCert) -> CompanyCertAttributesOut:
    return CompanyCertAttributesOut(
        cert.name, CompanyCertType(cert.type.value), CompanyCertStatus(cert.status.value)
    )


def _info(cert: StoredCert) -> CompanyCertInfo:
    return CompanyCertInfo(
        fingerPrint=cert.fingerprint,
        lastSeen=_ms(cert.last_seen),
        updatedAt=_ms(cert.updated_at),
        updatedBy=cert.updated_by or 0,
        commonName=cert.common_name,
        expiryDate=_ms(cert.not_after),
        issuerFingerPrint=cert.issuer_fingerprint or UNSET,
    )


class SuccessResponse(Struct):
    format: Literal["TEXT", "XML"]
    message: str


class PodCertificate(Struct):
    certificate: str


class Token(Struct):
    """The Authenticator's answer: the session token and the header to present it in."""

    name: str
    token: str
