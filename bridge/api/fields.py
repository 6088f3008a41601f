"""The value types the REST API's requests are made of, with their constraints.

Each is an annotated type: msgspec enforces the constraint when it decodes a request, and the
same constraint is what the OpenAPI document declares, so the two cannot drift. Patterns are
written in the subset Python's ``re`` and ECMA 262 (JSON Schema's regex dialect) read alike.
Free text is :data:`Text` (of :mod:`bridge.storable_text`): no U+0000, as the request guard
enforces.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from msgspec import Meta

from ..storable_text import TEXT_PATTERN as TEXT_PATTERN  # re-exported: the request types'
from ..storable_text import Text as Text
from .visible import VISIBLE

#: The most ids a body's list may hold.
MAX_IDS = 500
#: The most values one filter may be given.
MAX_VALUES = 20

_HEX_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_PATTERN = f"^{_HEX_UUID}$"


#: Text that must say something: at least one visible character (a text of white space and
#: control characters only would be empty once cleaned).
SOME_TEXT_PATTERN = f"^[^\\x00]*[{VISIBLE}][^\\x00]*$"

# Calendar days from 1900 to 2999, each month with its real length, 29 February in leap years.
_YEAR = "(?:19|2[0-9])[0-9]{2}"
_LEAP = "(?:(?:19|2[0-9])(?:0[48]|[2468][048]|[13579][26])|2000|2400|2800)"
_DAY = (
    f"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    f"|{_LEAP}-02-29)"
)
# A time of day, seconds and fraction optional, offset optional (UTC when absent); an
# unencoded "+" in a query string arrives as a space, so a space stands for it.
_TIME = (
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
    "(?:Z|[+ -](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)
#: A date filter's value: a day, an instant, ``null``, or one of the reference's shortcuts.
DATE_FILTER_PATTERN = (
    f"^(?:null|\\$(?:l?today|l?week|month)|(?:\\$(?:leq|lin)-)?{_DAY}(?:{_TIME})?)$"
)
ID_FILTER_PATTERN = f"^(?:null|{_HEX_UUID})$"

Id = Annotated[uuid.UUID, Meta(description="a network id (UUID)")]
#: Symphony's user id: the network user's numeric id (int64, assigned from 1).
UserNumber = Annotated[int, Meta(ge=1, le=2**63 - 1, description="a user id (int64)")]
_UNIQUE = {"uniqueItems": True}
#: Lists of ids in bodies: none twice (the decoder checks every list of a body).
Ids = Annotated[list[Id], Meta(max_length=MAX_IDS, extra_json_schema=_UNIQUE)]
SomeIds = Annotated[list[Id], Meta(min_length=1, max_length=MAX_IDS, extra_json_schema=_UNIQUE)]
TwoOrMoreIds = Annotated[
    list[Id], Meta(min_length=2, max_length=MAX_IDS, extra_json_schema=_UNIQUE)
]
SomeText = Annotated[str, Meta(pattern=SOME_TEXT_PATTERN)]
Instant = Annotated[datetime, Meta(tz=True, description="an ISO 8601 instant with its offset")]
#: A time the server renders: ISO 8601 in UTC, to the microsecond, ending in ``Z``.
Timestamp = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]

IdFilter = Annotated[
    list[Annotated[str, Meta(pattern=ID_FILTER_PATTERN)]],
    Meta(
        max_length=MAX_VALUES,
        description="an id, or null; repeat the parameter for any of several",
    ),
]
DateFilter = Annotated[
    list[Annotated[str, Meta(pattern=DATE_FILTER_PATTERN)]],
    Meta(
        max_length=MAX_VALUES,
        description=(
            "a day (YYYY-MM-DD, 1900 to 2999), an ISO 8601 instant (UTC without an offset), "
            "null, $today, $ltoday, $week, $lweek, $month, $leq-<day or instant> (the latest), "
            "$lin-<day or instant> (the earliest); repeat the parameter for several"
        ),
    ),
]
