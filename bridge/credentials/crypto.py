"""Encryption of credential secrets at rest, and the keyed hashes that find a credential by its
secret.

Each secret field is sealed with AES-256-GCM under the newest configured key; the credential id
and the field name are the associated data, so a ciphertext copied to another row or field does
not open. A sealed value reads ``<key id>.<base64url(nonce || ciphertext)>``, so values sealed
under an older key still open while ``bridge credentials rotate-key`` moves them to the newest.

Keys are lines of ``<key id>:<base64 of 32 bytes>`` (the last line is the newest), from the file
named by ``credentials.key_file`` or, replacing it, the environment variable named by
``credentials.key_env``. The lookup hash of a secret is an HMAC-SHA256 under a key derived (HKDF)
from an encryption key, so a database dump alone cannot test guesses.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import ConfigError, CredentialsConfig

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,32}")


class KeyringError(ValueError):
    """Key material that is missing or malformed."""


class DecryptionError(ValueError):
    """A sealed value that does not open: unknown key, or moved from another row or field."""


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM
    lookup: bytes  # HMAC key for lookup hashes


def _derive_lookup_key(material: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bridge credential lookup")
    return hkdf.derive(material)


def parse_keys(text: str, source: str) -> list[tuple[str, bytes]]:
    """``<key id>:<base64 key>`` entries (lines, commas or spaces apart; ``#`` comments)."""
    entries: list[tuple[str, bytes]] = []
    for line in text.splitlines():
        for entry in re.split(r"[\s,]+", line.split("#", 1)[0].strip()):
            if not entry:
                continue
            kid, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID_RE.fullmatch(kid):
                raise KeyringError(f"{source}: each key must read <key id>:<base64 key>")
            try:
                material = base64.b64decode(
                    encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
                )
            except (binascii.Error, ValueError):
                raise KeyringError(f"{source}: key {kid} is not base64") from None
            if len(material) != KEY_BYTES:
                raise KeyringError(f"{source}: key {kid} must be {KEY_BYTES} bytes (AES-256)")
            if any(kid == known for known, _ in entries):
                raise KeyringError(f"{source}: key id {kid} appears twice")
            entries.append((kid, material))
    if not entries:
        raise KeyringError(f"{source}: holds no key")
    return entries


def new_key_line(kid: str | None = None) -> str:
    """A fresh key entry: ``<key id>:<base64url key>``."""
    kid = kid or f"k{secrets.token_hex(4)}"
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip('=')}"


def _aad(credential_id: uuid.UUID, field: str) -> bytes:
    return b"bridge-credential\x00" + credential_id.bytes + b"\x00" + field.encode()


class Keyring:
    """The configured encryption keys, the newest of which seals new values."""

    def __init__(self, entries: list[tuple[str, bytes]]) -> None:
        if not entries:
            raise KeyringError("no encryption key")
        self._keys = {
            kid: _Key(kid, AESGCM(material), _derive_lookup_key(material))
            for kid, material in entries
        }
        self._newest = self._keys[entries[-1][0]]

    @property
    def newest_kid(self) -> str:
        return self._newest.kid

    def seal(self, credential_id: uuid.UUID, field: str, plaintext: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._newest.aead.encrypt(nonce, plaintext.encode(), _aad(credential_id, field))
        return f"{self._newest.kid}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, credential_id: uuid.UUID, field: str, sealed: str) -> str:
        kid, _, body = sealed.partition(".")
        key = self._keys.get(kid)
        if key is None:
            raise DecryptionError(f"sealed under key {kid!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(body)
            opened = key.aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(credential_id, field)
            )
        except (InvalidTag, ValueError, binascii.Error):
            raise DecryptionError(
                f"the {field} of credential {credential_id} does not open"
            ) from None
        return opened.decode()

    def seal_all(self, credential_id: uuid.UUID, values: Mapping[str, str]) -> dict[str, str]:
        return {name: self.seal(credential_id, name, value) for name, value in values.items()}

    def open_all(self, credential_id: uuid.UUID, sealed: Mapping[str, str]) -> dict[str, str]:
        return {name: self.open(credential_id, name, value) for name, value in sealed.items()}

    def lookup_hash(self, material: str) -> bytes:
        """The keyed hash a new or rotated credential is indexed by (newest key)."""
        return hmac.new(self._newest.lookup, material.encode(), sha256).digest()

    def lookup_hashes(self, material: str) -> list[bytes]:
        """The hash under every key: rows not yet rotated are still found."""
        return [hmac.new(k.lookup, material.encode(), sha256).digest() for k in self._keys.values()]


class KeySource:
    """The configured keyring, read again when the key file changes (``rotate-key`` adds a key
    while the bridge runs); a file that turns bad keeps the last good keys."""

    def __init__(self, config: CredentialsConfig, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.from_env = bool(env.get(config.key_env))
        self.config_key = "credentials.key_env" if self.from_env else "credentials.key_file"
        self._stamp: tuple[int, int, int] | None = None
        self._keyring: Keyring | None = None
        if self.from_env:
            try:
                self._keyring = Keyring(parse_keys(env[config.key_env], f"${config.key_env}"))
            except KeyringError as exc:
                raise ConfigError(self.config_key, str(exc)) from None
            return
        try:
            self._reload()
        except (KeyringError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(self.config_key, str(exc)) from None

    def _reload(self) -> None:
        path = self.config.key_file
        if path is None:
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._keyring = Keyring(parse_keys(path.read_text(encoding="utf-8"), str(path)))
            self._stamp = stamp

    def get(self) -> Keyring | None:
        """The keys now; ``None`` when none are configured."""
        if not self.from_env:
            try:
                self._reload()
            except (KeyringError, OSError, UnicodeDecodeError) as exc:
                if self._keyring is None:
                    raise ConfigError(self.config_key, str(exc)) from None
                log.warning("Keeping the previous credential keys: %s", exc)
        return self._keyring


def create_key_file(path: Path) -> bool:
    """Write a key file with one new key (0600) unless it exists; whether it was written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Credential encryption keys: <key id>:<base64 key>, newest last.\n")
        out.write(new_key_line() + "\n")
    return True


def add_key(path: Path) -> str:
    """Append a new newest key to the key file (kept 0600); its id."""
    line = new_key_line()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    path.chmod(0o600)
    return line.split(":", 1)[0]
