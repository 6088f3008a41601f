from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime


class CertType(enum.StrEnum):
    USERSIGNING = "USERSIGNING"
    USER = "USER"
    OPERATIONSSIGNING = "OPERATIONSSIGNING"
    OPERATIONSUSER = "OPERATIONSUSER"


class CertStatus(enum.StrEnum):
    TRUSTED = "TRUSTED"
    KNOWN = "KNOWN"
    REVOKED = "REVOKED"
    DISABLED = "DISABLED"


#: The types the pod itself manages (``podmanaged/list``); company ones are the others.
POD_MANAGED = (CertType.OPERATIONSSIGNING, CertType.OPERATIONSUSER)


@dataclass(frozen=True, slots=True)
class CompanyCert:
    fingerprint: str
    pem: str
    name: str
    type: CertType
    status: CertStatus
    common_name: str
    issuer_fingerprint: str | None
    not_after: datetime
    last_seen: datetime | None
    updated_at: datetime
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    fingerprint: str
    expires_at: datetime
