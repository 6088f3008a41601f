"""Networking rules against a real Postgres."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.errors import Conflict, Forbidden
from bridge.networking.models import RequestStatus
from tests.domain.conftest import Services


async def pair(conn: asyncpg.Connection, services: Services) -> tuple:
    ann = (await services.users.create(conn, "Ann")).id
    bob = (await services.users.create(conn, "Bob")).id
    return ann, bob


async def test_duplicate_request_raises_counter(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob = await pair(conn, services)
    first, created = await services.networking.send_request(conn, ann, bob, message="hi")
    again, created_again = await services.networking.send_request(conn, ann, bob)
    assert created and not created_again
    assert again.id == first.id
    assert again.request_counter == 2
    assert again.first_requested_at == first.first_requested_at
    assert again.message == "hi"
    assert first.seen_from(ann) == "PENDING_OUTGOING" and first.seen_from(bob) == "PENDING_INCOMING"
    assert await conn.fetchval("SELECT count(*) FROM connection_request") == 1
    assert (
        await conn.fetchval("SELECT count(*) FROM notification WHERE kind = 'connection_request'")
        == 1
    )


async def test_only_receiver_answers_only_sender_cancels(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob = await pair(conn, services)
    request, _ = await services.networking.send_request(conn, ann, bob)
    with pytest.raises(Forbidden):
        await services.networking.accept(conn, receiver=ann, request_id=request.id)
    with pytest.raises(Forbidden):
        await services.networking.cancel(conn, sender=bob, request_id=request.id)
    accepted = await services.networking.accept(conn, receiver=bob, request_id=request.id)
    assert accepted.status is RequestStatus.ACCEPTED and accepted.responded_at is not None
    assert await services.networking.is_connected(conn, bob, ann)
    assert await conn.fetchval("SELECT count(*) FROM connection") == 1
    with pytest.raises(Conflict):
        await services.networking.reject(conn, receiver=bob, request_id=request.id)
    with pytest.raises(Conflict):
        await services.networking.send_request(conn, ann, bob)


async def test_reject_cancel_and_request_again(
    conn: asyncpg.Connection, services: Services
) -> None:
    ann, bob = await pair(conn, services)
    request, _ = await services.networking.send_request(conn, ann, bob)
    rejected = await services.networking.reject(conn, receiver=bob, request_id=request.id)
    assert rejected.status is RequestStatus.REJECTED
    again, created = await services.networking.send_request(conn, ann, bob)
    assert created and again.id != request.id
    cancelled = await services.networking.cancel(conn, sender=ann, request_id=again.id)
    assert cancelled.status is RequestStatus.CANCELLED
    assert not await services.networking.is_connected(conn, ann, bob)


async def test_crossing_requests_connect(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob = await pair(conn, services)
    await services.networking.send_request(conn, ann, bob)
    answered, _ = await services.networking.send_request(conn, bob, ann)
    assert answered.status is RequestStatus.ACCEPTED
    assert await services.networking.is_connected(conn, ann, bob)


async def test_disconnect_and_self_request(conn: asyncpg.Connection, services: Services) -> None:
    ann, bob = await pair(conn, services)
    with pytest.raises(Conflict):
        await services.networking.send_request(conn, ann, ann)
    request, _ = await services.networking.send_request(conn, ann, bob)
    await services.networking.accept(conn, receiver=bob, request_id=request.id)
    assert [c.other(ann) for c in await services.networking.list_connections(conn, ann)] == [bob]
    await services.networking.disconnect(conn, bob, ann)
    assert await services.networking.list_connections(conn, ann) == []
