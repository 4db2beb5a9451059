"""A development CA and the certificates it signs, with the pinned `cryptography` package.

Every process gets an ECDSA P-256 key and a certificate naming it by a URI SAN
`spiffe://concord.local/<process>` (what peer_trust.py reads), valid for the given addresses
(IP SANs) and names (DNS SANs) so a client dialling any of them can verify the server, for
server and client authentication both. Lifetimes are short on purpose: re-minting is one
command, and a leaked development key stops mattering soon.

Files, in one folder: `ca.pem` and `ca-key.pem` (the CA; a deployment keeps its key
elsewhere), `<process>.pem` and `<process>-key.pem` (mode 0600). An existing CA is reused, so
re-minting the processes' certificates (rotation) keeps every peer's trust.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.transport_security import TlsSettings, identity

CA_DAYS = 30
CERT_DAYS = 7
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""Certificates start this long before they are minted, for peers whose clocks run behind."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(name: str = "Concord development CA", days: int = CA_DAYS) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - CLOCK_SKEW)
        .not_valid_after(_now() + datetime.timedelta(days=days))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def issue(
    authority: Authority,
    process: str,
    addresses: Iterable[IpAddress],
    names: Iterable[str],
    days: int = CERT_DAYS,
    uri: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for `process`, for TLS servers and clients both; `uri`
    replaces its Concord identity (tests of a certificate that names none)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri or identity(process))]
    sans += [x509.DNSName(name) for name in dict.fromkeys(names)]
    sans += [x509.IPAddress(address) for address in dict.fromkeys(addresses)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, process)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - CLOCK_SKEW)
        .not_valid_after(
            min(_now() + datetime.timedelta(days=days), authority.certificate.not_valid_after_utc)
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return key, certificate


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Written beside, then renamed over: a process re-reading the file (rotation) never sees
    half of it, and Envoy's watched_directory sees the move."""
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    if private:
        os.chmod(part, 0o600)
    part.replace(path)


def files_for(folder: Path, process: str) -> TlsSettings:
    """Where `process`'s files are, as the settings the process reads (CONCORD_TLS_*)."""
    return TlsSettings(
        ca_file=folder / "ca.pem",
        cert_file=folder / f"{process}.pem",
        key_file=folder / f"{process}-key.pem",
    )


def load_or_create_authority(folder: Path, new: bool = False) -> Authority:
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if not new and cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC key")
        return Authority(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
    authority = new_authority()
    folder.mkdir(parents=True, exist_ok=True)
    _write(key_path, _key_pem(authority.key), private=True)
    _write(cert_path, _pem(authority.certificate))
    return authority


def mint(
    folder: Path,
    processes: Iterable[str],
    addresses: Iterable[IpAddress],
    names: Iterable[str],
    days: int = CERT_DAYS,
    authority: Authority | None = None,
    uri: str | None = None,
) -> dict[str, TlsSettings]:
    """A certificate for each process, signed by `authority` or the folder's CA (created when
    missing); returns each process's settings."""
    authority = authority or load_or_create_authority(folder)
    folder.mkdir(parents=True, exist_ok=True)
    addresses, names = list(addresses), list(names)
    minted = {}
    for process in processes:
        key, certificate = issue(authority, process, addresses, names, days, uri)
        files = files_for(folder, process)
        _write(files.key_file, _key_pem(key), private=True)
        _write(files.cert_file, _pem(certificate))
        minted[process] = files
    return minted
