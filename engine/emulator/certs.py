"""The emulator's TLS: a local certificate authority (`cert.pem`, the file clients trust) and a server
certificate it signs for 127.0.0.1, ::1 and localhost. Both are kept in the certificate folder and reused
while valid, so a client configured once keeps working across restarts."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "cert.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server-cert.pem"
SERVER_KEY_FILE = "server-key.pem"
DNS_NAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")
VALID_DAYS = 825


@dataclass(frozen=True, slots=True)
class CertPaths:
    ca_file: Path  # trust this one
    cert_file: Path  # the server's certificate (served with the CA certificate after it)
    key_file: Path


def ensure_certificates(cert_dir: str | Path) -> CertPaths:
    """Reuses the folder's certificates while they are valid for another day, else makes new ones."""
    folder = Path(cert_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(folder / CA_FILE, folder / SERVER_CERT_FILE, folder / SERVER_KEY_FILE)
    if _usable(paths):
        return paths
    _generate(folder, paths)
    return paths


def _usable(paths: CertPaths) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
        chain = x509.load_pem_x509_certificates(paths.cert_file.read_bytes())
        key = serialization.load_pem_private_key(paths.key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    soon = datetime.now(UTC) + timedelta(days=1)
    server = chain[0]
    if server.not_valid_after_utc < soon or ca.not_valid_after_utc < soon or server.issuer != ca.subject:
        return False
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == server.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(temporary, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _generate(folder: Path, paths: CertPaths) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smartcampaign"),
            x509.NameAttribute(NameOID.COMMON_NAME, "smartcampaign Salesforce emulator local CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in IP_ADDRESSES]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    no_password = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    _write(folder / CA_KEY_FILE, ca_key.private_bytes(pem, pkcs8, no_password), private=True)
    _write(paths.key_file, server_key.private_bytes(pem, pkcs8, no_password), private=True)
    _write(paths.cert_file, server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write(paths.ca_file, ca_cert.public_bytes(pem))
