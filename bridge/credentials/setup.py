"""Building the credential services from the config (the app factory and the CLI use it)."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config
from ..db.database import Database
from ..users.service import UserService
from .authn import CredentialAuthenticator
from .crypto import Keyring, load_keyring
from .service import CredentialService
from .store import CredentialStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    service: CredentialService
    auth: CredentialAuthenticator
    keyring: Keyring | None


def build_credentials(
    config: Config, db: Database, users: UserService, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The services over one keyring; without a key, managing credentials answers 503."""
    settings = config.credentials
    env = os.environ if environ is None else environ
    keyring = load_keyring(settings, env)
    if keyring is None:
        log.warning(
            "No credential encryption key (credentials.key_file %s, $%s): credentials are off "
            "until one is configured (`bridge generate-registration` creates the file)",
            settings.key_file,
            settings.key_env,
        )
    source = f"${settings.key_env}" if env.get(settings.key_env) else "credentials.key_file"
    admins = frozenset(uuid.UUID(a) for a in settings.admin_accounts)
    store = CredentialStore()
    return Credentials(
        service=CredentialService(db, store, users, keyring, admins, key_source=source),
        auth=CredentialAuthenticator(db, store, keyring, admins),
        keyring=keyring,
    )
