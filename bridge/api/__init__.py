"""The network-facing REST API: JWT auth, the seed's envelope, routes per service.

Mount it with :func:`mount_api` (or :func:`api_apps` for the prefixes and sub-applications).
"""

from __future__ import annotations

from .access_log import RedactingAccessLogger
from .app import api_apps, mount_api
from .context import ApiServices

__all__ = ["ApiServices", "RedactingAccessLogger", "api_apps", "mount_api"]
