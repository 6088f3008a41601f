"""The network-facing REST API: JWT auth, the reference's envelope, routes per service.

"The reference" is the professional network's REST API reference these routes follow: its
envelope, error body, paging and filters. Mount it with :func:`mount_api` (or :func:`api_apps`
for the prefixes and sub-applications).
"""

from __future__ import annotations

from .access_log import RedactingAccessLogger
from .app import api_apps, mount_api
from .context import ApiServices

__all__ = ["ApiServices", "RedactingAccessLogger", "api_apps", "mount_api"]
