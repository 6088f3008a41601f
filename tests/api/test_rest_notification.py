"""/notification-api: devices and notifications over real HTTP."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, assert_error

DEV = "/notification-api/devices"
NOTE = "/notification-api/notifications"


async def test_register_and_unregister_devices(api: Api) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    status, body = await api.call(
        "POST", f"{DEV}/register", ann, json={"device": {"token": "tok-1", "platform": "iOS"}}
    )
    assert status == 201, body
    device = body["device"]
    assert (device["userId"], device["token"], device["platform"]) == (str(ann), "tok-1", "ios")
    status, again = await api.call(
        "POST", f"{DEV}/register", ann, json={"device": {"token": "tok-1", "platform": "android"}}
    )
    assert again["device"]["id"] == device["id"] and again["device"]["platform"] == "android"
    assert_error(*await api.call("POST", f"{DEV}/register", ann, json={"device": {}}), 400, "token")
    assert_error(*await api.call("POST", f"{DEV}/register", ann, json={}), 400, "device")
    assert_error(*await api.call("DELETE", f"{DEV}/unregister/{device['id']}", bob), 404)
    status, body = await api.call("DELETE", f"{DEV}/unregister/{device['id']}", ann)
    assert status == 200 and body["device"]["id"] == device["id"]
    assert_error(*await api.call("DELETE", f"{DEV}/unregister/{device['id']}", ann), 404)
    assert_error(*await api.call("DELETE", f"{DEV}/unregister/xyz", ann), 400, "deviceId")


async def test_send_list_and_mark_seen(api: Api) -> None:
    admin, ann, bob = uuid.uuid4(), uuid.uuid4(), await api.person("Bob")
    await api.call("GET", NOTE, ann)
    payload = {
        "notification": {
            "userIds": [str(ann), str(bob)],
            "title": "Maintenance",
            "body": "Tonight",
            "payload": {"at": "22:00"},
        }
    }
    assert_error(*await api.call("POST", NOTE, ann, json=payload), 403, "administrators")
    status, body = await api.call("POST", NOTE, admin, json=payload, admin=True)
    assert status == 201, body
    assert body["rowCount"] == 2 and {n["userId"] for n in body["notifications"]} == {
        str(ann),
        str(bob),
    }
    assert body["notifications"][0]["kind"] == "announcement"
    bad = {"notification": {"userIds": [str(uuid.uuid4())], "title": "x"}}
    assert_error(*await api.call("POST", NOTE, admin, json=bad, admin=True), 404)
    assert_error(
        *await api.call(
            "POST", NOTE, admin, json={"notification": {"userIds": [str(ann)]}}, admin=True
        ),
        400,
        "title",
    )
    for n in range(3):
        await api.call(
            "POST",
            NOTE,
            admin,
            admin=True,
            json={"notification": {"userIds": [str(ann)], "title": f"n{n}"}},
        )

    status, body = await api.call("GET", NOTE, ann, params={"limit": "2"})
    assert status == 200
    assert [n["title"] for n in body["notifications"]] == ["n2", "n1"]
    cursor = body["paging"].pop("nextCursor")
    assert isinstance(cursor, str) and cursor
    assert body["paging"] == {
        "pageNumber": 1,
        "pageRowCount": 2,
        "totalRowCount": 4,
        "pageCount": 2,
    }
    _, body = await api.call(
        "GET", NOTE, ann, params={"limit": "2", "page": "2", "sortBy": "createdAt"}
    )
    assert [n["title"] for n in body["notifications"]] == ["n1", "n2"]
    assert_error(*await api.call("GET", NOTE, ann, params={"sortBy": "title"}), 400, "sortBy")
    assert_error(*await api.call("GET", NOTE, ann, params={"page": "0"}), 400, "page")

    _, body = await api.call("GET", NOTE, ann, params={"limit": "1"})
    latest = body["notifications"][0]
    assert latest["isSeen"] is False
    status, body = await api.call(
        "POST", f"{NOTE}/seen", ann, json={"notificationIds": [latest["id"]]}
    )
    assert status == 200 and body["seen"] == {"notificationIds": [latest["id"]], "seenCount": 1}
    status, body = await api.call(
        "POST", f"{NOTE}/seen", bob, json={"notificationIds": [latest["id"]]}
    )
    assert body["seen"]["seenCount"] == 0  # not Bob's
    _, body = await api.call("GET", NOTE, ann, params={"limit": "1"})
    assert body["notifications"][0]["isSeen"] is True
    assert_error(*await api.call("POST", f"{NOTE}/seen", ann, json={"notificationIds": []}), 400)


async def test_a_title_of_removable_characters_is_refused(api: Api) -> None:
    admin, ann = uuid.uuid4(), await api.person("Ann")
    for title in ("\u200b\u0000\u2028", "\x07 \t", "   ", ""):
        status, body = await api.call(
            "POST",
            NOTE,
            admin,
            json={"notification": {"userIds": [str(ann)], "title": title}},
            admin=True,
        )
        assert_error(status, body, 400, "notification.title")
    _, listed = await api.call("GET", NOTE, ann)
    assert listed["notifications"] == []
    status, body = await api.call(
        "POST",
        NOTE,
        admin,
        json={"notification": {"userIds": [str(ann)], "title": "\u200bHi\u2060"}},
        admin=True,
    )  # (a NUL is refused as it arrives: no text field takes one)
    assert status == 201 and body["notifications"][0]["title"] == "Hi"
