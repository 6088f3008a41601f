"""Who signed in lately, so a REST request's token user is resolved without a database round
trip on the usual path (the user exists and is named as the token says).

The cache holds each user's stored display name, as last read or written by this process. It
is trusted only while this process LISTENs on ``bridge_user`` (:data:`USER_CHANNEL`): a trigger
(revision 0008) notifies the user's id when a ``network_user`` row is updated or deleted, and
``*`` when the table is truncated, from any process or a manual statement; the notification
drops the entry. While the listening connection is down (or ``appservice.listen_notify`` is
off), the cache is bypassed, and it starts empty on every (re)connection, so nothing notified
while nobody listened is trusted.

PostgreSQL delivers a notification when the writing transaction commits; another process sees
the change once the notification has reached it (well under a millisecond on one host, but not
ordered with that process's next request). This process's own renames update the entry at
once. An entry read from the database is stored only if no notification arrived meanwhile, so
a change committed during the read is not overwritten by the older name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

#: The channel the ``network_user`` trigger notifies (the payload is the user's id, or ``*``).
USER_CHANNEL = "bridge_user"
#: Entries kept at most; the cache starts over when full (each entry is one row read again).
MAX_ENTRIES = 50_000


class UserCache:
    """Display names by user id, valid while ``active()`` says notifications are received."""

    def __init__(self, active: Callable[[], bool] = lambda: False) -> None:
        self._names: dict[uuid.UUID, str] = {}
        self._active = active
        #: Bumped by every invalidation: a read started before it is not stored.
        self.generation = 0

    def follow(self, active: Callable[[], bool]) -> None:
        """Trust entries only while ``active()`` (the listening connection is up)."""
        self._active = active
        self.clear()

    def name(self, user_id: uuid.UUID) -> str | None:
        """The stored display name of ``user_id``, if known and trusted now."""
        if not self._active():
            return None
        return self._names.get(user_id)

    def remember(self, user_id: uuid.UUID, display_name: str, *, since: int) -> None:
        """Store a name read (or written) when the generation was ``since``."""
        if since != self.generation or not self._active():
            return
        if len(self._names) >= MAX_ENTRIES:
            self._names.clear()
        self._names[user_id] = display_name

    def clear(self) -> None:
        self.generation += 1
        self._names.clear()

    def changed(self, payload: str | None) -> None:
        """A notification on :data:`USER_CHANNEL` (None: the listener (re)connected)."""
        self.generation += 1
        if payload is None or payload == "*":
            self._names.clear()
            return
        try:
            self._names.pop(uuid.UUID(payload), None)
        except ValueError:
            self._names.clear()  # not ours to interpret: trust nothing
