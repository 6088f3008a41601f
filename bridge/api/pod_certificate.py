"""The pod certificate: a self-signed X.509 certificate over the bridge's current signing key,
with which a client verifies the session tokens (RS256 JWTs) the bridge issues.

Made on first request for each signing key and kept until a month before it expires, so a
rotated key gets its certificate on the next request.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from .signing_keys import SigningKeys

VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)


class PodCertificate:
    def __init__(self, keys: SigningKeys, common_name: str) -> None:
        self._keys = keys
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._made: dict[str, tuple[str, datetime]] = {}

    def pem(self) -> str:
        """The certificate (PEM) over the key new tokens are signed with."""
        material = self._keys.current()
        now = datetime.now(UTC)
        made = self._made.get(material.kid)
        if made is not None and made[1] - now > RENEW_BEFORE:
            return made[0]
        serial = int.from_bytes(hashlib.sha256(f"{material.kid}{now}".encode()).digest()[:16])
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(material.public_key)
            .serial_number(serial >> 1)  # positive, at most 127 bits
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(material.private_key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self._made = {material.kid: (pem, now + VALIDITY)}
        return pem
