"""A conversation's first pages of messages, read in one statement: the participant check,
the viewer's own deletions and the total as on every other page."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, assert_error
from tests.api.test_rest_messaging import MSG, direct, post


async def test_first_page_checks_participants_and_counts_what_the_viewer_sees(api: Api) -> None:
    ann, bob, cat = await api.friend("Ann"), await api.friend("Bob"), await api.friend("Cat")
    ab = (await direct(api, ann, bob))["id"]
    sent = [await post(api, ann, ab, f"m{i}") for i in range(5)]
    status, body = await api.call("DELETE", f"{MSG}/{sent[1]['id']}", bob)  # hidden for Bob
    assert status == 200, body

    params = {"conversationId": ab, "pageNumber": "1", "pageRowCount": "3"}
    _, bobs = await api.call("GET", MSG, bob, params=params)
    assert [m["content"] for m in bobs["messages"]] == ["m0", "m2", "m3"]
    assert bobs["paging"]["totalRowCount"] == 4 and bobs["paging"]["pageCount"] == 2
    _, anns = await api.call("GET", MSG, ann, params={**params, "pageNumber": "2"})
    assert [m["content"] for m in anns["messages"]] == ["m3", "m4"]
    assert anns["paging"]["totalRowCount"] == 5

    assert_error(*await api.call("GET", MSG, cat, params=params), 403, "participants")
    missing = {**params, "conversationId": str(uuid.uuid4())}
    assert_error(*await api.call("GET", MSG, ann, params=missing), 404, "no conversation")
