from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class NetworkUser:
    id: uuid.UUID
    display_name: str
    avatar_url: str | None
    matrix_user_id: str | None
    created_at: datetime
    updated_at: datetime
    #: The numeric id (Symphony's int64 user id): assigned once from a sequence, never reused.
    number: int

    @property
    def is_matrix_user(self) -> bool:
        return self.matrix_user_id is not None
