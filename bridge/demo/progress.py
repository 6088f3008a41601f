"""One line per step as it completes, with its time; a failure that says what to do.

A failed step becomes :class:`StepFailed`: the step's name, what went wrong, the log file to
read and, when the cause is recognisable (a port in use, no write access, Synapse missing or
exiting), the likely fix.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

#: Gives the likely fix for an exception, or None when it has nothing specific to say.
Hint = Callable[[BaseException], str | None]


class StepFailed(Exception):
    """A start-up step failed; ``str()`` is the whole explanation for a person."""

    def __init__(
        self, step: str, cause: BaseException | str, log: Path | None, fix: str | None
    ) -> None:
        self.step = step
        self.cause = cause if isinstance(cause, str) else (str(cause) or type(cause).__name__)
        self.log = log
        self.fix = fix
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [f"bridge demo: step failed: {self.step}", f"  what happened: {self.cause}"]
        if self.log is not None:
            lines.append(f"  log file: {self.log}")
        if self.fix:
            lines.append(f"  likely fix: {self.fix}")
        return "\n".join(lines)


def write_access_hint(directory: Path) -> Hint:
    """The fix for errors that come from the data directory's permissions."""

    def hint(exc: BaseException) -> str | None:
        if isinstance(exc, PermissionError) or (
            isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM)
        ):
            return (
                f"no write access to {directory}: fix its permissions or choose another "
                "directory with --dir"
            )
        return None

    return hint


class Progress:
    """Prints each completed step (``[ok] <step> (1.2 s)``) to ``out``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @contextlib.asynccontextmanager
    async def step(
        self, title: str, *, log: Path | None = None, hint: Hint | None = None
    ) -> AsyncIterator[None]:
        began = time.monotonic()
        try:
            yield
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(title, exc, log, hint(exc) if hint else None) from exc
        self.say(f"[ok] {title} ({time.monotonic() - began:.1f} s)")
