"""The domain services, built once per application on its pool (no singletons)."""

from __future__ import annotations

from .api.context import ApiServices
from .db.database import Database
from .messaging.service import MessagingService
from .messaging.store import MessagingStore
from .networking.service import NetworkingService
from .networking.store import NetworkingStore
from .notifications.service import NotificationService
from .notifications.store import NotificationStore
from .users.service import UserService
from .users.store import UserStore


def build_services(db: Database) -> ApiServices:
    """Users, notifications, networking and messaging, each depending only on those before it.

    Their entry points open transactions on ``db``; their ``conn`` methods run in the caller's.
    """
    users = UserService(db, UserStore())
    notifications = NotificationService(db, NotificationStore(), users)
    networking = NetworkingService(db, NetworkingStore(), notifications, users)
    messaging = MessagingService(db, MessagingStore(), notifications, users, networking)
    return ApiServices(
        users=users, messaging=messaging, networking=networking, notifications=notifications
    )
