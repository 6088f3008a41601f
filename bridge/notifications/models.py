from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str
    payload: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class Device:
    id: uuid.UUID
    user_id: uuid.UUID
    token: str
    platform: str
    created_at: datetime
