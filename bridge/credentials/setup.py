"""Building the credential services from the config (the app factory and the CLI use it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config
from ..db.database import Database
from ..users.service import UserService
from .authn import CredentialAuthenticator
from .crypto import KeySource
from .service import CredentialService
from .store import CredentialStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    service: CredentialService
    auth: CredentialAuthenticator
    keys: KeySource


def build_credentials(
    config: Config, db: Database, users: UserService, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The services over one key source; without a key, managing credentials answers 503."""
    settings = config.credentials
    keys = KeySource(settings, environ)
    if keys.get() is None:
        log.warning(
            "No credential encryption key (credentials.key_file %s, $%s): credentials are off "
            "until one is configured (`bridge generate-registration` creates the file)",
            settings.key_file,
            settings.key_env,
        )
    admins = frozenset(uuid.UUID(a) for a in settings.admin_accounts)
    store = CredentialStore()
    return Credentials(
        service=CredentialService(db, store, users, keys, admins),
        auth=CredentialAuthenticator(db, store, keys, admins),
        keys=keys,
    )
