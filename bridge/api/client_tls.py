"""The TLS listener's context (``api.tls``): it requests a client certificate and accepts one
issued by, or equal to, any stored company certificate; which of those may authenticate, and
as whom, is decided per request by :mod:`bridge.symphony.authn` from their current statuses.

The context's trust store only grows (OpenSSL cannot drop a certificate from it): a deleted or
revoked certificate still passes the handshake and is refused by the authentication itself.
Validity periods are checked there too (so an expired certificate is answered 403 rather than
cut off during the handshake).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import asyncpg
from aiohttp import web

from ..config import TlsConfig
from ..symphony.service import CompanyCertService

log = logging.getLogger(__name__)

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (Python has no name for it).
_NO_CHECK_TIME = 0x200000


class ClientCertTls:
    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.certificate, config.key)
        context.verify_mode = ssl.CERT_OPTIONAL
        # Integers, not VerifyFlags: ``~`` on the enum would drop the bit it has no name for.
        flags = int(context.verify_flags) | ssl.VERIFY_X509_PARTIAL_CHAIN | _NO_CHECK_TIME
        context.verify_flags = ssl.VerifyFlags(flags & ~int(ssl.VERIFY_X509_STRICT))
        self.context = context
        self._trusted: set[str] = set()

    def trust(self, fingerprint: str, pem: str) -> None:
        """Accept certificates issued by (or equal to) this one from the next handshake on."""
        if fingerprint in self._trusted:
            return
        try:
            self.context.load_verify_locations(cadata=pem)
        except ssl.SSLError as exc:
            log.warning("Cannot add certificate %s to the TLS trust store: %s", fingerprint, exc)
            return
        self._trusted.add(fingerprint)

    def trust_all(self, pems: dict[str, str]) -> None:
        for fingerprint, pem in pems.items():
            self.trust(fingerprint, pem)


def peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate (DER) presented on the request's TLS connection, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


class ClientTlsListener:
    """What ``bridge run`` needs to serve the TLS listener: its context, kept in step with the
    company certificates (those stored by another bridge process too, within ``REFRESH``)."""

    REFRESH = 30.0

    def __init__(self, tls: ClientCertTls, certs: CompanyCertService) -> None:
        self.tls = tls
        self._certs = certs

    async def refresh(self) -> None:
        self.tls.trust_all(await self._certs.all_pems())

    async def keep_refreshed(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH)
            try:
                await self.refresh()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("Could not refresh the TLS trust store: %s", exc)
