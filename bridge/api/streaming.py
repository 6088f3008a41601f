"""``pageNumber=0``: a whole list written as it is read, batch by batch.

The reference's "To disable pagination and retrieve all results, set pageNumber to 0" has no
limit, so the answer is not built in memory: the envelope's head (up to ``rowCount``, which is
the count taken in the same snapshot as the rows) is written first, then each batch of rows as
it comes from the database cursor, encoded by the resources' msgspec encoder, then the tail
(``paging``, ``filters``, ``uiPermissions``), in a chunked response. Memory holds one batch
whatever the list's size. ``elapsedMs`` is the time until the answer started (it is written
before the rows).

Each whole list being written holds a pooled database connection and an open snapshot for as
long as its client takes to read, so how many may be written at once is bounded
(``api.whole_lists``, :class:`WholeListGate`): past it the request is refused with 503 before
anything is read, and a few slow clients cannot take the pool from everyone else.

Everything that can refuse the request (the query, the token, who may read what, the count)
happens before the first byte, so a refusal is still an ordinary 4xx. Once the status line is
out nothing can become an error response: if the database fails, or fewer or more rows come
than were counted, the connection is aborted before the body's end, so the client sees a
truncated body that is not JSON, never a shorter list that parses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from ..errors import BadRequest, Unavailable
from ..listing import WholeList
from .envelope import Envelope, Paging

log = logging.getLogger(__name__)
_ENCODER = msgspec.json.Encoder()


class WholeListGate:
    """How many whole lists may be written at once (``api.whole_lists``); one more is refused
    with 503 rather than queued, so its client can page instead or try again."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._writing = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._writing >= self.limit:
            raise Unavailable(
                f"{self.limit} whole lists (pageNumber=0) are being written (api.whole_lists): "
                "try again shortly, or page through the list"
            )
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1


#: The gate every sub-application of the REST API shares.
WHOLE_LISTS = web.AppKey("whole_lists", WholeListGate)


@dataclass(frozen=True)
class WholeReply:
    """A handler's ``pageNumber=0`` answer: ``open`` enters the snapshot (checking and counting
    on entry), ``render`` turns a domain row into its resource."""

    open: Callable[[], AbstractAsyncContextManager[WholeList[Any]]]
    render: Callable[[Any], Any]
    #: A list with keyset cursors: its paging has ``nextCursor`` (null: no rows follow).
    cursors: bool = False


def every_row(cursor: object | UnsetType) -> None:
    """``pageNumber=0`` lists everything: a cursor (the next page of a paged walk) makes no
    sense with it."""
    if cursor is not UNSET:
        raise BadRequest("pageNumber=0 lists every row; cursor continues a paged list: give one")


def whole_paging(total: int, *, cursors: bool) -> Paging:
    """Every row on one page (nothing follows it)."""
    return Paging(
        pageNumber=0,
        pageRowCount=total,
        totalRowCount=total,
        pageCount=min(total, 1),
        nextCursor=None if cursors else UNSET,
    )


def _frame(envelope: Envelope) -> tuple[bytes, bytes]:
    """The body around the rows: ``{...,"rowCount":n,"<dataName>":[`` and ``],...}``."""
    fields = [
        (name, value)
        for name in Envelope.__struct_fields__
        if (value := getattr(envelope, name)) is not UNSET
    ]
    cut = [name for name, _ in fields].index("rowCount") + 1
    head = _ENCODER.encode(dict(fields[:cut]))[:-1]
    tail = _ENCODER.encode(dict(fields[cut:]))[1:]
    return head + b"," + _ENCODER.encode(envelope.dataName) + b":[", b"]," + tail


async def _rows(whole: WholeList[Any], render: Callable[[Any], Any]) -> AsyncIterator[bytes]:
    """The rows' JSON, a batch at a time, with the commas between them; refuses to end on a
    count other than the one the envelope announced."""
    written = 0
    async for batch in whole.batches:
        if not batch:
            continue
        encoded = _ENCODER.encode([render(row) for row in batch])
        yield (b"," if written else b"") + encoded[1:-1]
        written += len(batch)
    if written != whole.total:
        raise RuntimeError(f"{written} rows read where {whole.total} were counted")


async def write_whole(
    request: web.Request,
    reply: WholeReply,
    envelope_for: Callable[[int], Envelope],
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Answer ``reply`` as a chunked response; see the module's docstring for what happens
    when something fails on the way."""
    response: web.StreamResponse | None = None
    try:
        with request.config_dict[WHOLE_LISTS].slot():
            async with reply.open() as whole:
                head, tail = _frame(envelope_for(whole.total))
                response = web.StreamResponse(status=200, headers=headers)
                response.content_type = "application/json"
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(head)
                async for chunk in _rows(whole, reply.render):
                    await response.write(chunk)
                await response.write(tail)
    except Exception as exc:
        if response is None or not response.prepared:
            raise  # nothing sent yet: an ordinary error response
        if isinstance(exc, ConnectionError):
            log.info("client left during the whole list of %s", request.path)
        else:
            log.exception("whole list of %s aborted after it started", request.path)
        if request.transport is not None:
            request.transport.abort()  # no final chunk: the body is visibly cut short
    assert response is not None
    return response
