"""The bridge's own signing key: what ``generate-registration`` sets up for the REST API.

When the config gives the REST API nothing to verify tokens with (no HS256 secret, no RS256
key of any kind), the bridge gets an RS256 key pair of its own: a private key file, owner-only
from the moment it exists, beside the bridge's data; the config then names it
(``api.jwt.algorithm: RS256``, ``api.jwt.private_key_file``). Tokens it signs carry the key's
RFC 7638 thumbprint as ``kid`` (see :mod:`bridge.api.keys`), the id under which
``/auth-api/publickey`` publishes it. An existing key file is never overwritten, and a config
that already configures token verification is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from .config import Config, ConfigError

#: The key file's name, in the directory that holds the embedded database's data directory.
KEY_FILE_NAME = "jwt-signing-key.pem"
KEY_BITS = 2048


def needs_signing_key(config: Config) -> bool:
    """Whether the config leaves the REST API without any means to verify a token."""
    jwt = config.api.jwt
    return not (jwt.secret or jwt.public_key_file or jwt.jwks_file or jwt.private_key_file)


def default_key_path(config: Config) -> Path:
    """Where the bridge's own key goes: beside the bridge's data (``embedded_data_dir``)."""
    return config.appservice.embedded_data_dir.parent / KEY_FILE_NAME


def parse_private_key(data: bytes) -> RSAPrivateKey:
    """An RSA private key from PEM (ValueError for anything else)."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def create_private_key_file(path: Path) -> bool:
    """Write a new RSA private key (PEM, PKCS#8) to ``path``, created with mode 0600.

    Returns False, writing nothing, when ``path`` already holds a usable RSA private key; a file
    there that is not one is an error (never overwritten).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            parse_private_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                "api.jwt.private_key_file", f"{path} exists but is not an RSA private key: {exc}"
            ) from None
        return False
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def config_relative(config_path: Path, path: Path) -> str:
    """``path`` as the config should name it: relative to the config's directory when inside."""
    base = config_path.resolve().parent
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path.resolve())
