"""The demo's data directory: where each of its files lives, and its saved state."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..local.synapse import SynapseFiles

DEFAULT_DIR = Path("bridge-demo")


class DemoBusy(RuntimeError):
    """Another ``bridge demo`` runs on this data directory."""


@dataclass(frozen=True)
class DemoLayout:
    """Paths of the demo's files, all under ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        """The bridge's config (usable with every ``bridge`` command)."""
        return self.root / "config.yaml"

    @property
    def registration(self) -> Path:
        return self.root / "registration.yaml"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "data" / "postgres"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_dir / "postgres.log"

    @property
    def synapse(self) -> SynapseFiles:
        return SynapseFiles(self.root / "synapse")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def synapse_log(self) -> Path:
        return self.logs / "synapse.log"

    @property
    def bridge_log(self) -> Path:
        return self.logs / "bridge.log"

    @property
    def state(self) -> Path:
        """What the first run set up (ports, users, rooms), for the next runs."""
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root.with_name(self.root.name + ".lock")

    def read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, state: dict[str, Any]) -> None:
        """Saved owner-only (it holds the Matrix password), replaced atomically."""
        tmp = self.state.with_name(f".{self.state.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        tmp.replace(self.state)


class DemoLock:
    """An exclusive ``flock`` on ``<root>.lock`` for as long as a demo uses ``root``."""

    def __init__(self, layout: DemoLayout) -> None:
        self._path = layout.lock
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise DemoBusy(
                f"another `bridge demo` (pid {holder or '?'}) is running on this directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
