"""Error rendering of the API surface, mounting beside the Matrix API, filters and paging."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import MultiDict

from bridge.api import ApiServices, mount_api
from bridge.api.access_log import redact
from bridge.api.decoding import decode_query
from bridge.api.envelope import PageRequest
from bridge.api.filters import Filters
from bridge.api.queries import MAX_ROWS, PagedQuery
from bridge.app import CONTEXT, DATABASE, init_app
from bridge.errors import BadRequest
from tests.api.conftest import Api, api_config, assert_error, hs_token

CONV = "/messaging-api/v1/conversations"


async def test_unknown_route_and_method_use_the_network_error_body(api: Api) -> None:
    resp = await api.client.get("/messaging-api/v1/nothing")
    assert_error(resp.status, await resp.json(), 404, "no such route")
    resp = await api.client.put(CONV, headers={"Authorization": f"Bearer {hs_token(uuid.uuid4())}"})
    assert_error(resp.status, await resp.json(), 405, "not allowed")
    assert "POST" in resp.headers["Allow"]


async def test_unexpected_errors_are_500_without_details(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    # The list's usual call (rendered rows) and any other.
    api.services.messaging.rendered_conversations_page = broken  # type: ignore[method-assign]
    api.services.messaging.list_conversations_page = broken  # type: ignore[method-assign]
    token = hs_token(uuid.uuid4())
    with caplog.at_level(logging.ERROR):
        resp = await api.client.get(CONV, params={"access_token": token})
    body = await resp.json()
    assert_error(resp.status, body, 500, "internal server error")
    assert "secret" not in str(body)
    assert "secret internals" in caplog.text  # logged for the operator...
    assert token not in caplog.text  # ...without the token from the query string


async def test_request_id_generated_when_absent(api: Api) -> None:
    _, body = await api.call("GET", CONV, uuid.uuid4())
    assert len(body["requestId"]) == 32 and int(body["requestId"], 16) >= 0


async def test_mounted_beside_the_matrix_api(aiohttp_client: Any, dsn: str) -> None:
    config = api_config()
    app = await init_app(config, dsn)
    ctx = app[CONTEXT]
    mount_api(
        app,
        config,
        app[DATABASE],
        ApiServices(
            users=ctx.users,
            messaging=ctx.messaging,
            networking=ctx.networking,
            notifications=ctx.notifications,
        ),
    )
    client = await aiohttp_client(app)
    resp = await client.get(CONV, headers={"Authorization": f"Bearer {hs_token(uuid.uuid4())}"})
    assert resp.status == 200 and (await resp.json())["status"] == "OK"
    resp = await client.get("/messaging-api/v1/nothing")
    assert_error(resp.status, await resp.json(), 404)
    resp = await client.get(CONV)
    assert_error(resp.status, await resp.json(), 401)
    resp = await client.get("/_matrix/app/v1/nothing")  # the Matrix surface keeps its shape
    assert (await resp.json())["errcode"] == "M_UNRECOGNIZED"


def test_access_log_never_shows_a_token() -> None:
    assert redact("/x?access_token=abc.def&a=1") == "/x?access_token=REDACTED&a=1"
    assert redact("/x?a=1&ACCESS_TOKEN=abc") == "/x?a=1&ACCESS_TOKEN=REDACTED"
    assert redact("/x?my_access_token=1") == "/x?my_access_token=1"


# --- filters and paging, with a fixed clock -----------------------------------------------

NOW = datetime(2024, 5, 15, 13, 30, tzinfo=UTC)  # a Wednesday


def dates(*values: str) -> Any:
    return Filters(now=NOW).dates("d", list(values))


def test_date_shortcuts() -> None:
    day = dates("$today")
    assert day.periods == [(datetime(2024, 5, 15, tzinfo=UTC), datetime(2024, 5, 16, tzinfo=UTC))]
    week = dates("$week").periods[0]
    assert week == (datetime(2024, 5, 13, tzinfo=UTC), datetime(2024, 5, 20, tzinfo=UTC))
    month = dates("$month").periods[0]
    assert month == (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))
    assert dates("$ltoday").periods[0][0] == datetime(2024, 5, 14, 13, 30, tzinfo=UTC)
    assert dates("$lweek").periods[0][0] == datetime(2024, 5, 8, 13, 30, tzinfo=UTC)
    bounded = dates("$lin-2024-01-01", "$leq-2024-01-31", "null")
    assert bounded.periods is None and bounded.with_null
    assert bounded.since == datetime(2024, 1, 1, tzinfo=UTC)
    assert bounded.until == datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    exact = dates("2024-01-15T10:00:00 00:00").periods[0]  # "+" decoded as a space
    assert exact[0] == datetime(2024, 1, 15, 10, tzinfo=UTC)
    with pytest.raises(BadRequest):
        dates("$yesterday")


def parse_page(query: MultiDict[str]) -> PageRequest:
    decoded = decode_query(query, PagedQuery)
    return PageRequest(decoded.pageNumber, decoded.pageRowCount)


def test_paging_rules() -> None:
    assert parse_page(MultiDict()).limit == 25
    page = parse_page(MultiDict(pageNumber="3", pageRowCount="10"))
    assert (page.limit, page.offset) == (10, 20)
    everything = parse_page(MultiDict(pageNumber="0"))
    assert (everything.limit, everything.offset) == (MAX_ROWS, 0)
    paging = everything.paging(MAX_ROWS)
    assert (paging.pageNumber, paging.pageRowCount, paging.totalRowCount, paging.pageCount) == (
        0,
        MAX_ROWS,
        MAX_ROWS,
        1,
    )
    assert parse_page(MultiDict()).paging(0).pageCount == 0
    for bad in ({"pageNumber": "1.5"}, {"pageRowCount": "-2"}, {"pageNumber": "٣"}):
        with pytest.raises(BadRequest):
            parse_page(MultiDict(bad))
