"""The development CA (tools/certs): what it mints is what peer_trust.py and grpc rely on."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from runtime.transport_security import TlsSettings, identity
from tools.certs.__main__ import processes
from tools.certs.authority import CERT_DAYS, load_or_create_authority, mint
from tools.certs.host import host_addresses

LOOPBACK = [ipaddress.ip_address("127.0.0.1")]


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_process_gets_a_certificate_the_ca_signed_naming_it(tmp_path: Path) -> None:
    minted = mint(tmp_path, ["orders", "gateway"], LOOPBACK, ["localhost"])
    ca = certificate(tmp_path / "ca.pem")
    for process, files in minted.items():
        cert = certificate(files.cert_file)
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [identity(process)]
        assert sans.get_values_for_type(x509.IPAddress) == LOOPBACK
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}


def test_certificates_are_short_lived_and_keys_private(tmp_path: Path) -> None:
    files = mint(tmp_path, ["inventory"], LOOPBACK, [])["inventory"]
    cert = certificate(files.cert_file)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= datetime.timedelta(days=CERT_DAYS, minutes=5)
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600


def test_minting_again_keeps_the_ca_so_peers_keep_trusting_each_other(tmp_path: Path) -> None:
    mint(tmp_path, ["orders"], LOOPBACK, [])
    first_ca = (tmp_path / "ca.pem").read_bytes()
    first_cert = (tmp_path / "orders.pem").read_bytes()
    mint(tmp_path, ["orders"], LOOPBACK, [])
    assert (tmp_path / "ca.pem").read_bytes() == first_ca
    assert (tmp_path / "orders.pem").read_bytes() != first_cert
    assert load_or_create_authority(tmp_path, new=True).certificate != certificate(
        tmp_path / "orders.pem"
    )
    assert (tmp_path / "ca.pem").read_bytes() != first_ca


def test_every_identity_a_deployment_needs_is_minted() -> None:
    assert {"registry", "gateway", "orders", "inventory", "payments", "paygate"} <= set(processes())


def test_host_addresses_include_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in host_addresses()


def test_settings_are_all_three_files_or_none(tmp_path: Path) -> None:
    assert TlsSettings.from_env({}) is None
    with pytest.raises(ValueError, match="CONCORD_TLS_KEY_FILE"):
        TlsSettings.from_env({"CONCORD_TLS_CA_FILE": "ca.pem", "CONCORD_TLS_CERT_FILE": "a.pem"})
    files = mint(tmp_path, ["orders"], LOOPBACK, [])["orders"]
    assert TlsSettings.from_env(files.as_env()) == files
