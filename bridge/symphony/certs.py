"""X.509 certificates as company certificates: parsing a pasted PEM, the fingerprint, the
``certInfo`` groups, and whether one certificate issued another.

The fingerprint is the SHA-256 digest of the certificate's DER encoding, in lowercase
hexadecimal without separators (64 characters), as ``openssl x509 -noout -fingerprint
-sha256`` prints it once the colons are removed and the letters lowered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from ..errors import BadRequest

FINGERPRINT_PATTERN = "^[0-9A-Fa-f]{64}$"
_FINGERPRINT = re.compile("[0-9a-f]{64}")
_BEGIN_CERT = "-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_DATE = "%a %b %d %H:%M:%S UTC %Y"  # as Symphony shows them: Mon Jan 15 20:56:05 UTC 2018


def fingerprint_of(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def normal_fingerprint(value: str) -> str | None:
    """A fingerprint as given (either case), normalised to lowercase, or None if malformed."""
    lowered = value.lower()
    return lowered if _FINGERPRINT.fullmatch(lowered) else None


def common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ParsedCert:
    cert: x509.Certificate
    pem: str
    fingerprint: str
    common_name: str


def parse_pem(text: str, now: datetime | None = None) -> ParsedCert:
    """One PEM certificate pasted by an administrator, or 400 saying what is wrong.

    A private key pasted by mistake is refused without being parsed, echoed or logged; an
    expired certificate is refused (``v2/create``).
    """
    if _PRIVATE_KEY.search(text):
        raise BadRequest(
            "pem holds a private key: paste only the certificate (-----BEGIN CERTIFICATE-----); "
            "the key was not stored, and it should be considered exposed"
        )
    if text.count(_BEGIN_CERT) != 1:
        raise BadRequest("pem must hold exactly one PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        cert = x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise BadRequest("pem is not a well-formed PEM X.509 certificate") from None
    moment = now or datetime.now(UTC)
    if cert.not_valid_after_utc < moment:
        raise BadRequest(f"the certificate expired on {cert.not_valid_after_utc.strftime(_DATE)}")
    name = common_name(cert)
    if name is None:
        raise BadRequest("the certificate's subject has no common name (CN)")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return ParsedCert(cert, pem, fingerprint_of(cert), name)


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def directly_issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``child`` (and the names match)."""
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def valid_at(cert: x509.Certificate, moment: datetime) -> bool:
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def _key_algorithm(cert: x509.Certificate) -> tuple[str, str]:
    """The public key's algorithm (Java's names, as Symphony shows them) and its size."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", str(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", f"{key.key_size} ({key.curve.name})"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", str(key.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", "256"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", "456"
    return type(key).__name__, ""


def signature_algorithm(cert: x509.Certificate) -> str:
    """As Java names it (``SHA256withRSA``), which is what Symphony shows."""
    hash_algorithm = cert.signature_hash_algorithm
    oid_name = getattr(cert.signature_algorithm_oid, "_name", "")
    if hash_algorithm is None:
        return str(oid_name or cert.signature_algorithm_oid.dotted_string)
    kind = "ECDSA" if "ecdsa" in str(oid_name).lower() else _key_algorithm(cert)[0]
    if "pss" in str(oid_name).lower():
        kind = "RSASSA-PSS"
    return f"{hash_algorithm.name.upper().replace('-', '')}with{kind}"


def cert_info(cert: x509.Certificate) -> list[tuple[str, list[tuple[str, str]]]]:
    """The ``certInfo`` groups: General, Validity, Public Key."""
    algorithm, size = _key_algorithm(cert)
    return [
        (
            "General",
            [
                ("Issuer", cert.issuer.rfc4514_string()),
                ("Subject", cert.subject.rfc4514_string()),
                ("Serial Number", format(cert.serial_number, "x")),
                ("Version", str(cert.version.value + 1)),
                ("Signature Algorithm", signature_algorithm(cert)),
                ("Fingerprint (SHA-256)", fingerprint_of(cert)),
            ],
        ),
        (
            "Validity",
            [
                ("Not Before", cert.not_valid_before_utc.strftime(_DATE)),
                ("Not After", cert.not_valid_after_utc.strftime(_DATE)),
            ],
        ),
        (
            "Public Key",
            [("Algorithm", algorithm), ("Format", "X.509"), ("Key Size", size)],
        ),
    ]
