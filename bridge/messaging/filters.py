"""What the paged lists of conversations and messages keep: one typed filter per list, built
once from the parsed query and handed unchanged from the REST handler through the service to
the SQL (:mod:`.queries`), so a new filter is a field here and its fragment there."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime


@dataclass(frozen=True)
class DateRange:
    """A date filter: ``periods`` (half-open, OR-ed), ``since`` / ``until`` (inclusive bounds),
    ``with_null`` (rows whose value is NULL match too)."""

    periods: Sequence[tuple[datetime, datetime]] | None = None
    since: datetime | None = None
    until: datetime | None = None
    with_null: bool = False


@dataclass(frozen=True, kw_only=True)
class MessageFilter:
    """The conditions on a list of messages beyond its conversations; None: no condition."""

    sender_ids: Sequence[uuid.UUID] | None = None
    #: One of them has read it (a sender has read their own).
    reader_ids: Sequence[uuid.UUID] | None = None
    sent: DateRange | None = None
    #: One of them has not read it (past their read marker, and not their own).
    unread_by: Sequence[uuid.UUID] | None = None
    #: One of them hid it for themselves (in place of the viewer's own deletions).
    deleted_for: Sequence[uuid.UUID] | None = None

    @property
    def plain(self) -> bool:
        """No condition: the list is every visible message (its total is a counter)."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True, kw_only=True)
class ConversationFilter:
    """The conditions on a list of a user's conversations; None: no condition."""

    is_group: Sequence[bool] | None = None
    participant_ids: Sequence[uuid.UUID] | None = None
    #: With ``participant_ids``: every one of them takes part (else any one).
    all_participants: bool = True
    last_message: DateRange | None = None

    @property
    def plain(self) -> bool:
        """No condition: the list is every conversation of the user's (its total is a count of
        their participations)."""
        return all(
            getattr(self, f.name) is None for f in fields(self) if f.name != "all_participants"
        )
