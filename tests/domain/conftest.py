from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from bridge.db.database import init_connection
from bridge.messaging.service import MessagingService
from bridge.messaging.store import MessagingStore
from bridge.networking.service import NetworkingService
from bridge.networking.store import NetworkingStore
from bridge.notifications.service import NotificationService
from bridge.notifications.store import NotificationStore
from bridge.users.service import UserService
from bridge.users.store import UserStore


@dataclass
class Services:
    users: UserService
    notifications: NotificationService
    messaging: MessagingService
    networking: NetworkingService


@pytest.fixture
def services() -> Services:
    notifications = NotificationService(NotificationStore())
    return Services(
        users=UserService(UserStore()),
        notifications=notifications,
        messaging=MessagingService(MessagingStore(), notifications),
        networking=NetworkingService(NetworkingStore(), notifications),
    )


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection set up as the pool's are (JSON codecs), as services expect."""
    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()
