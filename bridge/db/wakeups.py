"""Wake-ups across processes: LISTEN on the channels that committed inbox and outbox rows notify.

Triggers on ``inbox`` and ``outbox`` (revision 0005) notify ``bridge_inbox`` and
``bridge_outbox`` when a transaction that inserted rows commits, with the writer's
``application_name`` as the payload. Each worker process keeps one dedicated connection
listening (LISTEN is session state; pooled connections are shared), and wakes its idle workers
when another process committed work. Its own commits are skipped: it wakes its workers in
memory already.

Polling stays the fallback: while the connection is down (or ``appservice.listen_notify`` is
off, e.g. behind a pooler in transaction mode) workers find others' work every
``poll_interval``. After every (re)connection each handler is called once, for what was
notified while nobody listened.

Channels whose payload matters (``bridge_user``: which user changed) get ``payload_handlers``:
called with every notification's payload, the process's own included, and with None after
every (re)connection, before :attr:`WakeupListener.listening` is set again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import asyncpg

log = logging.getLogger(__name__)

INBOX_CHANNEL = "bridge_inbox"
OUTBOX_CHANNEL = "bridge_outbox"

_TRANSIENT = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class WakeupListener:
    """One listening connection; calls ``handlers[channel]`` for others' notifications."""

    def __init__(
        self,
        dsn: str,
        application_name: str,
        handlers: Mapping[str, Callable[[], None]],
        *,
        payload_handlers: Mapping[str, Callable[[str | None], None]] | None = None,
        keepalive: float = 30.0,
        retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._name = application_name
        self._handlers = dict(handlers)
        self._payload_handlers = dict(payload_handlers or {})
        self._keepalive = keepalive
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._task: asyncio.Task[None] | None = None
        #: Set while the connection listens (tests wait for it).
        self.listening = asyncio.Event()
        #: Notifications from other processes received, in all.
        self.received = 0

    @property
    def channels(self) -> list[str]:
        """The channels it listens on (once started)."""
        return [*self._handlers, *self._payload_handlers]

    def start(self) -> None:
        if (self._handlers or self._payload_handlers) and self._task is None:
            self._task = asyncio.create_task(self._run(), name="wakeup-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        with_payload = self._payload_handlers.get(channel)
        if with_payload is not None:
            self.received += 1
            with_payload(payload if isinstance(payload, str) else None)
            return
        if payload == self._name:
            return  # our own commit: its workers were woken in memory
        handler = self._handlers.get(channel)
        if handler is not None:
            self.received += 1
            handler()

    async def _run(self) -> None:
        delay = self._retry_delay
        while True:
            try:
                await self._listen()
            except _TRANSIENT as exc:
                log.warning(
                    "Wake-up listener lost its connection (%s); polling until it is back in %.0f s",
                    exc,
                    delay,
                )
            else:
                delay = self._retry_delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def _listen(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": self._name}, timeout=30
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            channels = self.channels
            for channel in channels:
                await conn.add_listener(channel, self._on_notification)
            for payload_handler in self._payload_handlers.values():
                payload_handler(None)  # what was notified while nobody listened is unknown
            self.listening.set()
            log.debug("Listening for wake-ups on %s", ", ".join(channels))
            for handler in self._handlers.values():
                handler()  # anything committed while nobody listened
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._keepalive)
                if not lost.is_set():
                    # A half-open connection never tells: ask it something now and then.
                    await conn.fetchval("SELECT 1", timeout=self._keepalive)
            log.warning("Wake-up listener's connection was closed; reconnecting")
        finally:
            self.listening.clear()
            if not conn.is_closed():
                with contextlib.suppress(*_TRANSIENT):
                    await asyncio.wait_for(conn.close(), 5)
            if not conn.is_closed():
                conn.terminate()
