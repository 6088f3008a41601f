"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the samples went.

``python -m bench.profile_summary PROFILE.txt [--top N] [--match TEXT ...]``

Prints the functions with the most samples on top of the stack ("self"), the ones with the most
samples anywhere on the stack ("total", each counted once per stack), and, with ``--match``, the
share of samples whose stack contains each given text. Samples of an event loop waiting in
``select``/``epoll`` are idle time: they are left out unless ``--keep-idle`` is given (py-spy
does not always recognise them as idle itself).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

_IDLE_LEAVES = ("EpollSelector.select (", "PollSelector.select (", "SelectSelector.select (")


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``; line numbers merged."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1] if where else ""
    return f"{name} ({file})" if file else name


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep-idle", action="store_true", help="count event-loop waits too")
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        help="report the share of samples whose stack contains this text",
    )
    args = parser.parse_args(argv)
    stacks = load(args.profile)
    everything = sum(n for _, n in stacks)
    if not args.keep_idle:
        stacks = [(f, n) for f, n in stacks if not f[-1].startswith(_IDLE_LEAVES)]
    total = sum(n for _, n in stacks)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    for frames, n in stacks:
        names = [_frame_name(f) for f in frames]
        own[names[-1]] += n
        for name in set(names):
            anywhere[name] += n
    idle = "" if args.keep_idle else f" ({everything - total} idle samples left out)"
    print(f"{total} samples{idle}\n\nself:")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ntotal (inclusive):")
    for name, n in anywhere.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    if args.match:
        print("\nstacks containing:")
        for text in args.match:
            n = sum(c for frames, c in stacks if any(text in f for f in frames))
            print(f"  {100 * n / total:5.1f}%  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
