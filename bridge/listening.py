"""Binding the bridge's listeners, with an error that says which setting to change when the
address is taken (several bridge processes on one machine each want their own metrics port,
and share the appservice port only with ``reuse_port``)."""

from __future__ import annotations

import errno

from aiohttp import web


class ListenerError(OSError):
    """A listener could not bind: names the setting, the address and what to do."""


def host_port(host: str, port: int) -> str:
    """``host:port``, the host in brackets when it is an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_site(site: web.BaseSite, setting: str, host: str, port: int, hint: str) -> None:
    """Start ``site``; a bind failure becomes a :class:`ListenerError` naming ``setting`` (and,
    for an address in use, ``hint``)."""
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ListenerError(
                f"{setting}: {host_port(host, port)} is already in use by another process; " + hint,
            ) from exc
        reason = exc.strerror or str(exc)
        raise ListenerError(
            f"{setting}: cannot listen on {host_port(host, port)}: {reason}"
        ) from exc
