"""Webhook TLS: a private CA and a serving certificate, generated with ``cryptography``.

kopf's own self-signed path needs oscrypto, which fails to detect libcrypto on OpenSSL 3; so
the operator makes its own. Certificates supplied from outside (the chart's Helm-generated
CA, cert-manager) are used as they are: :func:`ensure_certificates` only generates when
``tls.crt``/``tls.key`` are missing. The CA's certificate (``ca.crt``) is what the
MutatingWebhookConfiguration's ``caBundle`` must hold.

Several replicas must serve one certificate: each generating its own CA would make the last
one to start overwrite the ``caBundle`` and the others' certificates stop verifying. With a
certificate Secret (``--webhook-cert-secret``) the first replica generates the pair into it
(a create: a second replica racing it gets a conflict and reads the winner's), and every
replica serves the Secret's pair and patches the same CA into the ``caBundle``.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import CertificateError

__all__ = [
    "CertificateFiles",
    "certificate_secret",
    "certificates_from_secret",
    "ensure_certificates",
    "generate_certificates",
]

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Paths of the serving certificate, its key, and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path | None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_certificates(
    sans: tuple[str, ...], *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes, bytes]:
    """A new CA and a serving certificate for ``sans``: (ca.crt, tls.crt, tls.key) as PEM."""
    if not sans:
        raise CertificateError("a serving certificate needs at least one subject alt name")
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("aigw-webhook-ca"))
        .issuer_name(_name("aigw-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(sans[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_alt_name(s) for s in sans]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), _pem_key(key)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_certificates(directory: Path, sans: tuple[str, ...]) -> tuple[CertificateFiles, bool]:
    """Use ``directory``'s tls.crt/tls.key, or generate them; returns (files, generated)."""
    files = CertificateFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    if files.cert.exists() and files.key.exists():
        return CertificateFiles(
            files.cert, files.key, files.ca if files.ca and files.ca.exists() else None
        ), False
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca, cert, key = generate_certificates(sans)
        _write_private(files.key, key)
        files.cert.write_bytes(cert)
        if files.ca is not None:
            files.ca.write_bytes(ca)
    except OSError as exc:
        raise CertificateError(f"cannot write certificates to {directory}: {exc}") from exc
    return files, True


def _write_files(directory: Path, ca: bytes, cert: bytes, key: bytes) -> CertificateFiles:
    files = CertificateFiles(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(files.key, key)
        files.cert.write_bytes(cert)
        if files.ca is not None:
            files.ca.write_bytes(ca)
    except OSError as exc:
        raise CertificateError(f"cannot write certificates to {directory}: {exc}") from exc
    return files


def certificates_from_secret(data: dict[str, str], directory: Path) -> CertificateFiles:
    """Write the ``tls.crt``/``tls.key``/``ca.crt`` of a Secret's data (base64) to files."""
    try:
        ca, cert, key = (base64.b64decode(data[k]) for k in ("ca.crt", "tls.crt", "tls.key"))
    except (KeyError, ValueError) as exc:
        raise CertificateError(f"the certificate Secret lacks {exc}") from exc
    return _write_files(directory, ca, cert, key)


def certificate_secret(namespace: str, name: str, sans: tuple[str, ...]) -> dict[str, object]:
    """A new Secret holding a generated CA and serving certificate for ``sans``."""
    ca, cert, key = generate_certificates(sans)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "aigw-operator"},
        },
        "data": {
            k: base64.b64encode(v).decode()
            for k, v in (("ca.crt", ca), ("tls.crt", cert), ("tls.key", key))
        },
    }
