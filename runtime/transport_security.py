"""Mutual TLS between Concord's processes, when a deployment configures it; plaintext otherwise.

Three settings name PEM files: `CONCORD_TLS_CA_FILE` (the CA every peer's certificate must
chain to), `CONCORD_TLS_CERT_FILE` and `CONCORD_TLS_KEY_FILE` (this process's own identity).
All three absent: every listener and channel is plaintext, exactly as on loopback under
`make up`. Set: every gRPC server listens with TLS and *requires* a client certificate from
that CA, and every channel presents this process's certificate and verifies the server's.

Requiring, not merely requesting: grpc's Python API offers "don't ask for a client
certificate" (`require_client_auth=False`, under which the server never learns who the peer
is) or "require one and verify it", nothing in between. So a peer without a certificate of
ours is refused in the TLS handshake, before any byte of a call reaches the process; the
client sees UNAVAILABLE (grpc's code for a connection that could not be made), the server logs
the handshake failure. peer_trust.py decides, per call, what a verified peer may do.

Certificates identify a process by a URI SAN `spiffe://concord.local/<process>` (tools/certs.py
mints them for development). Servers re-read their files at the next handshake after they
change (grpc's dynamic server credentials), so a rotated certificate needs no restart; a
client channel reads them when it is opened (docs/deploy.md#certificates says how to rotate).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

TRUST_DOMAIN = "concord.local"
CA_FILE_ENV = "CONCORD_TLS_CA_FILE"
CERT_FILE_ENV = "CONCORD_TLS_CERT_FILE"
KEY_FILE_ENV = "CONCORD_TLS_KEY_FILE"
SERVER_NAME_ENV = "CONCORD_TLS_SERVER_NAME"


def identity(process: str) -> str:
    """The URI SAN of a process's certificate: `spiffe://concord.local/orders`."""
    return f"spiffe://{TRUST_DOMAIN}/{process}"


IDENTITY_PREFIX = identity("")
GATEWAY_IDENTITY = identity("gateway")
"""The only peer whose calls may carry a customer's identity (x-customer-*)."""
ENVOY_CERTIFICATE_SECRET = "concord_gateway_certificate"
"""The secret in Envoy's bootstrap holding the gateway's certificate and key, which the
clusters the registry serves (registry/xds_resources.py) present upstream."""
ENVOY_CA_SECRET = "concord_ca"
"""The secret in Envoy's bootstrap with the CA an upstream's certificate must chain to."""


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path
    cert_file: Path
    key_file: Path
    server_name: str | None = None
    """`CONCORD_TLS_SERVER_NAME`: the name every server's certificate is checked against,
    instead of the address dialled, for deployments whose certificates cannot list every
    address (pod IPs); unset, the address must be one of the certificate's SANs."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TlsSettings | None:
        """None when none of the three files is named; a ValueError naming what is missing
        when only some are, so a half-configured process never falls back to plaintext."""
        env = os.environ if environ is None else environ
        names = (CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV)
        values = [env.get(name, "") for name in names]
        if not any(values):
            return None
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise ValueError(f"TLS is half configured: {', '.join(missing)} not set")
        return cls(
            ca_file=Path(values[0]),
            cert_file=Path(values[1]),
            key_file=Path(values[2]),
            server_name=env.get(SERVER_NAME_ENV) or None,
        )

    def as_env(self) -> dict[str, str]:
        """The settings as the environment variables a child process reads."""
        env = {
            CA_FILE_ENV: str(self.ca_file),
            CERT_FILE_ENV: str(self.cert_file),
            KEY_FILE_ENV: str(self.key_file),
        }
        if self.server_name:
            env[SERVER_NAME_ENV] = self.server_name
        return env

    def _files(self) -> tuple[bytes, bytes, bytes]:
        return self.ca_file.read_bytes(), self.key_file.read_bytes(), self.cert_file.read_bytes()

    def _stamp(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime for p in (self.ca_file, self.cert_file, self.key_file))

    def server_credentials(self) -> grpc.ServerCredentials:
        """Requires and verifies a client certificate from the CA; re-reads the three files
        at the next handshake after any of them changed."""
        ca, key, cert = self._files()
        seen = [self._stamp()]

        def fetch() -> Any:
            # Called by grpc before each handshake: cheap when nothing changed (None).
            try:
                stamp = self._stamp()
                if stamp == seen[0]:
                    return None
                ca, key, cert = self._files()
                seen[0] = stamp
            except OSError:
                return None  # mid-rotation: keep the last good files, try again next time
            return grpc.ssl_server_certificate_configuration([(key, cert)], ca)

        return grpc.dynamic_ssl_server_credentials(
            grpc.ssl_server_certificate_configuration([(key, cert)], ca),
            fetch,
            require_client_authentication=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, key, cert = self._files()
        return grpc.ssl_channel_credentials(ca, key, cert)

    def channel_options(self) -> list[tuple[str, Any]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def peer_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The Concord identity (`spiffe://concord.local/<process>`) the peer's verified certificate
    names; None on plaintext or for a certificate that names none."""
    for raw in context.peer_identities() or ():
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if text.startswith(IDENTITY_PREFIX):
            return text
    return None


@functools.cache
def configured() -> TlsSettings | None:
    """This process's TLS settings, read from the environment once."""
    return TlsSettings.from_env()


def channel(
    address: str,
    tls: TlsSettings | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to another Concord process: mutual TLS when this process (or `tls`)
    is configured for it, plaintext otherwise. Every process-to-process channel opens here."""
    tls = tls or configured()
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(
        address,
        tls.channel_credentials(),
        options=[*options, *tls.channel_options()],
    )


def blocking_channel(address: str, tls: TlsSettings | None = None) -> grpc.Channel:
    """The same for synchronous callers (the dev CLI, readiness checks, tests)."""
    tls = tls or configured()
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.channel_credentials(), options=tls.channel_options())


def listen(server: grpc.aio.Server, address: str, tls: TlsSettings | None) -> int:
    """Binds `address` with TLS when `tls` is set; the bound port, 0 when binding failed."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.server_credentials())
