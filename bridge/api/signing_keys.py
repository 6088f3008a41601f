"""The bridge's own RS256 signing keys: the one that signs, and the older ones still trusted.

With ``api.jwt.private_key_file`` set, that file's key signs. Otherwise the keys live in
``api.jwt.key_dir`` as ``<UTC timestamp>.pem`` files (0600): the newest signs, the older ones
still verify what they signed until ``bridge keys rotate`` retires them (it keeps
``api.jwt.keep_keys``). A key is generated there on first start. The directory is listed
again on each use, so a rotation takes effect without a restart.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..own_key import create_private_key_file
from .keys import KeyFile, KeyFileError, SigningKey, SigningMaterial
from .keys import _signing as signing_material

log = logging.getLogger(__name__)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def key_files(key_dir: Path) -> list[Path]:
    """The directory's key files, oldest first."""
    if not key_dir.is_dir():
        return []
    return sorted(p for p in key_dir.iterdir() if p.suffix == ".pem" and not p.name.startswith("."))


def _new_key(key_dir: Path) -> Path:
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = key_dir / f"{_stamp()}.pem"
    create_private_key_file(path)
    return path


def ensure_signing_key(key_dir: Path) -> Path | None:
    """Generate the first signing key when the directory holds none; the file written."""
    if key_files(key_dir):
        return None
    path = _new_key(key_dir)
    log.info("Generated the bridge's token-signing key %s", path)
    return path


def rotate(private_key_file: Path | None, key_dir: Path, keep: int) -> tuple[str, list[Path]]:
    """A new signing key (its kid returned); trusted keys beyond the ``keep`` newest go.

    With ``private_key_file``, its key moves to the directory (still trusted) and a new key
    takes its place.
    """
    if private_key_file is not None:
        if private_key_file.exists():
            key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.replace(private_key_file, key_dir / f"{_stamp()}.pem")
        create_private_key_file(private_key_file)
        new = private_key_file
    else:
        new = _new_key(key_dir)
    files = key_files(key_dir)
    trusted = keep - 1 if private_key_file is not None else keep
    retired = files[: max(len(files) - trusted, 0)]
    for path in retired:
        path.unlink()
    return signing_material(new.read_bytes()).kid, retired


class SigningKeys:
    """The signing key and every key still trusted, by ``kid``."""

    def __init__(self, private_key_file: Path | None, key_dir: Path | None) -> None:
        self._file = SigningKey(private_key_file) if private_key_file is not None else None
        self._dir = key_dir
        self._dir_files: list[Path] | None = None
        self._dir_keys: list[KeyFile[SigningMaterial]] = []
        self._scan()
        if self._file is None and not self._dir_keys:
            raise KeyFileError(f"{key_dir}: holds no signing key")

    @classmethod
    def load(cls, private_key_file: Path | None, key_dir: Path | None) -> SigningKeys | None:
        """The configured keys, or ``None`` when there are none."""
        if private_key_file is None and (key_dir is None or not key_files(key_dir)):
            return None
        return cls(private_key_file, key_dir)

    def _scan(self) -> None:
        if self._dir is None:
            return
        # The names, not the directory's mtime: two rotations within its resolution still show.
        files = key_files(self._dir)
        if files == self._dir_files:
            return
        self._dir_files = files
        keys: list[KeyFile[SigningMaterial]] = []
        for path in files:
            try:
                keys.append(KeyFile(path, signing_material))
            except KeyFileError as exc:
                log.warning("Ignoring signing key %s: %s", path, exc)
        self._dir_keys = keys

    def _materials(self) -> list[SigningMaterial]:
        """Newest (the signing key) first."""
        self._scan()
        found = [key.get() for key in reversed(self._dir_keys)]
        return [self._file.current(), *found] if self._file is not None else found

    def current(self) -> SigningMaterial:
        """The key new tokens are signed with."""
        return self._materials()[0]

    def trusted(self) -> dict[str, RSAPublicKey]:
        """Every key whose signatures are accepted, by ``kid`` (the signing key first)."""
        keys: dict[str, RSAPublicKey] = {}
        for material in self._materials():
            keys.setdefault(material.kid, material.public_key)
        return keys
