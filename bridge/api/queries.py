"""What the REST API accepts in query strings: one type per route's parameters.

Every query type takes the reference's common parameters; anything else a route does not declare is
refused (400 naming it). A parameter typed as a list may be repeated (``?x=a&x=b``: any of
them); any other may be given once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from .cursor import ConversationsCursor, MessagesCursor, NotificationsCursor
from .fields import TEXT_PATTERN, DateFilter, Id, IdFilter

DEFAULT_ROWS = 25
#: The most rows one page carries (``pageNumber=0`` answers every row, however many).
MAX_ROWS = 1000
#: Beyond this page number the offset makes no sense for any list here.
MAX_PAGE = 1_000_000
MAX_USER_IDS = 100
REQUEST_ID_PATTERN = "^[A-Za-z0-9._\\-]{1,64}$"
#: Parameters carried by the document's security schemes rather than listed per operation.
SECURITY_PARAMETERS = frozenset({"access_token"})

Flag = Annotated[bool, Meta(description="accepted for the reference's clients; no effect here")]


class PublicQuery(Struct, forbid_unknown_fields=True):
    """The reference's common parameters (``getJoins``, ``excludeCQRS``, ``caching`` and
    ``cacheTTL`` are accepted as the reference's clients send them; they change nothing here)."""

    requestId: (
        Annotated[
            str,
            Meta(pattern=REQUEST_ID_PATTERN, description="an id for this request (in the answer)"),
        ]
        | UnsetType
    ) = UNSET
    access_token: str | UnsetType = UNSET  # empty: as if not given (the next place counts)
    getJoins: Flag | UnsetType = UNSET
    excludeCQRS: Flag | UnsetType = UNSET
    caching: Flag | UnsetType = UNSET
    cacheTTL: (
        Annotated[
            int,
            Meta(ge=0, le=86400, description="accepted for the reference's clients; no effect"),
        ]
        | UnsetType
    ) = UNSET


class Query(PublicQuery):
    asUserId: Annotated[Id, Meta(description="administrators: act as this user")] | (
        UnsetType
    ) = UNSET


class PagedQuery(Query):
    pageNumber: Annotated[
        int,
        Meta(
            ge=0,
            le=MAX_PAGE,
            description=(
                "from 1; 0: every row, however many, on one page (written as it is read, in "
                "chunks; not with cursor)"
            ),
        ),
    ] = 1
    pageRowCount: Annotated[int, Meta(ge=1, le=MAX_ROWS, description="rows per page")] = (
        DEFAULT_ROWS
    )


class ConversationsQuery(PagedQuery):
    cursor: ConversationsCursor | UnsetType = UNSET
    isGroup: Annotated[list[Literal["true", "false", "null"]], Meta(max_length=3)] | UnsetType = (
        UNSET
    )
    participantIds: IdFilter | UnsetType = UNSET
    participantIds_op: Annotated[
        Literal["contains", "overlap"],
        Meta(description="contains (the default): all of participantIds; overlap: any of them"),
    ] = "contains"
    lastMessageAt: DateFilter | UnsetType = UNSET


class MessagesQuery(PagedQuery):
    cursor: MessagesCursor | UnsetType = UNSET
    conversationId: IdFilter | UnsetType = UNSET
    senderUserId: IdFilter | UnsetType = UNSET
    readBy: IdFilter | UnsetType = UNSET
    unreadBy: (
        Annotated[
            IdFilter,
            Meta(description="messages this user has not read (yourself; administrators: anyone)"),
        ]
        | UnsetType
    ) = UNSET
    deletedFor: (
        Annotated[
            IdFilter,
            Meta(description="messages this user hid (yourself; administrators: anyone)"),
        ]
        | UnsetType
    ) = UNSET
    sentAt: DateFilter | UnsetType = UNSET
    afterMessageId: (
        Annotated[Id, Meta(description="only messages after this one (totalRowCount counts those)")]
        | UnsetType
    ) = UNSET


class ConnectionsQuery(PagedQuery):
    pass


class ConnectionRequestsQuery(PagedQuery):
    status: (
        Annotated[
            list[Literal["pending", "accepted", "rejected", "cancelled", "null"]],
            Meta(max_length=5),
        ]
        | UnsetType
    ) = UNSET


NotificationSort = Literal[
    "createdAt", "+createdAt", "createdAt:asc", "-createdAt", "createdAt:desc"
]


class NotificationsQuery(Query):
    page: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 1
    limit: Annotated[int, Meta(ge=1, le=MAX_ROWS)] = 20
    sortBy: Annotated[
        NotificationSort, Meta(description="oldest first (createdAt) or newest first")
    ] = "-createdAt"
    cursor: NotificationsCursor | UnsetType = UNSET


SymphonyStatusFilter = Literal[
    "PENDING_INCOMING", "PENDING_OUTGOING", "ACCEPTED", "REJECTED", "ALL"
]
_NUMBER = "[1-9][0-9]{0,18}"


class SymphonyListQuery(Query):
    status: (
        Annotated[SymphonyStatusFilter, Meta(description="both pending ones when not given")]
        | UnsetType
    ) = UNSET
    userIds: (
        Annotated[
            str,
            Meta(
                pattern=f"^ *{_NUMBER} *(?:, *{_NUMBER} *)*$",
                max_length=MAX_USER_IDS * 22 - 1,
                description=f"comma-separated user ids (at most {MAX_USER_IDS})",
            ),
        ]
        | UnsetType
    ) = UNSET


class PublicKeyQuery(PublicQuery):
    keyId: Annotated[str, Meta(min_length=1, max_length=200, pattern=TEXT_PATTERN)] | UnsetType = (
        UNSET
    )


class CertPageQuery(Query):
    """``skip``/``limit`` of the company-certificate lists."""

    skip: Annotated[int, Meta(ge=0, le=2**31 - 1, description="pagination start")] = 0
    limit: Annotated[int, Meta(ge=1, le=MAX_ROWS, description="row limit (default 100)")] = 100
