"""Key material for the REST API's JWTs: files re-read when they change, JWKS, thumbprints.

Key files are checked on every use (one ``stat``) and parsed again when their mtime, size or
inode changes, so a rotated key or key set takes effect without a restart. A file that turns
unreadable or unparseable keeps its last good content (with a warning); one that is already bad
at start is a configuration error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from ..own_key import parse_private_key

log = logging.getLogger(__name__)

T = TypeVar("T")


class KeyFileError(ValueError):
    """A key file that cannot be read or parsed."""


class KeyFile(Generic[T]):
    """A key file's parsed content, re-parsed whenever the file changes."""

    def __init__(self, path: Path, parse: Callable[[bytes], T]) -> None:
        self.path = path
        self._parse = parse
        self._stamp: tuple[int, int, int] | None = None
        self._value: T | None = None
        self._failure: str | None = None
        self.get()  # fail fast: the file must be good at start

    def get(self) -> T:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                self._stamp = stamp  # a bad version is tried once, not on every request
                value = self._parse(self.path.read_bytes())
                self._value, self._failure = value, None
                log.info("Loaded key file %s", self.path)
        except (OSError, ValueError) as exc:
            if self._value is None:
                raise KeyFileError(f"{self.path}: {exc}") from None
            if str(exc) != self._failure:
                self._failure = str(exc)
                log.warning("Keeping the previous keys: cannot load %s: %s", self.path, exc)
        assert self._value is not None
        return self._value


def parse_public_key(data: bytes) -> RSAPublicKey:
    """An RSA public key from a PEM public key or certificate."""
    if b"BEGIN CERTIFICATE" in data:
        key: object = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def parse_jwks(data: bytes) -> dict[str, RSAPublicKey]:
    """The RS256 signing keys of a JWKS document, by ``kid`` (a key without one by thumbprint)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('a JWKS needs a "keys" list')
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        key = RSAAlgorithm.from_jwk(entry)
        if isinstance(key, RSAPrivateKey):
            key = key.public_key()
        if not isinstance(key, RSAPublicKey):
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) and kid else thumbprint(key)] = key
    if not keys:
        raise ValueError("the JWKS holds no RS256 signing key")
    return keys


def public_jwk(key: RSAPublicKey) -> dict[str, Any]:
    """The JWK members of an RSA public key (``kty``, ``n``, ``e``)."""
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}


def thumbprint(key: RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable ``kid`` for the key."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_pem(key: RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class SigningMaterial:
    private_key: RSAPrivateKey
    public_key: RSAPublicKey
    kid: str


def _signing(data: bytes) -> SigningMaterial:
    private = parse_private_key(data)
    public = private.public_key()
    return SigningMaterial(private, public, thumbprint(public))


class SigningKey:
    """The bridge's own RS256 private key (``api.jwt.private_key_file``), re-read on change."""

    def __init__(self, path: Path) -> None:
        self._file = KeyFile(path, _signing)

    def current(self) -> SigningMaterial:
        return self._file.get()

    def trusted(self) -> dict[str, RSAPublicKey]:
        """The keys whose signatures are accepted, by ``kid``: this one."""
        material = self._file.get()
        return {material.kid: material.public_key}
