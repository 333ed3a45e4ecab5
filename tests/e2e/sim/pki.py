"""Throwaway certificates: the CA the clients trust, the simulator's server certificate, and
self-signed client certificates for service principals."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from . import world


@dataclass(frozen=True)
class ServerPki:
    ca_pem: Path
    server_pem: Path  # leaf then chain
    server_key: Path


def make_server_pki(directory: Path, names: tuple[str, ...] = world.CERT_NAMES) -> ServerPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Simulated Azure DevOps")
    leaf = ca.issue_cert(*names, common_name=world.FEED_HOST)
    pki = ServerPki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(pki.ca_pem))
    with pki.server_pem.open("wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(pki.server_key))
    pki.server_key.chmod(0o600)
    return pki


@dataclass(frozen=True)
class ClientCertificate:
    cert_pem: Path
    key_pem: Path
    # Key and certificate in one file: what azure-identity's CertificateCredential and the
    # official provider's clientCertificateFilePath take.
    combined_pem: Path
    thumbprint: str  # SHA-1, upper-case hex, as the portal shows it
    sha256_thumbprint: str  # lower-case hex
    public_key_pem: bytes
    subject: str


def make_client_certificate(directory: Path, name: str) -> ClientCertificate:
    """A self-signed RSA certificate, as one registers on an app for certificate credentials."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_bytes = cert.public_bytes(serialization.Encoding.PEM)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    paths = (
        directory / f"{name}.crt.pem",
        directory / f"{name}.key.pem",
        directory / f"{name}.pem",
    )
    paths[0].write_bytes(cert_bytes)
    for path, data in ((paths[1], key_bytes), (paths[2], key_bytes + cert_bytes)):
        path.write_bytes(data)
        path.chmod(0o600)
    der = cert.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(
        cert_pem=paths[0],
        key_pem=paths[1],
        combined_pem=paths[2],
        thumbprint=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 - a thumbprint, not security
        sha256_thumbprint=hashlib.sha256(der).hexdigest(),
        public_key_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        subject=f"CN={name}",
    )
