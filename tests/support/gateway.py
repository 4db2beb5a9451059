"""The gateway under test: real Envoy on free ports, a plain HTTP client, development tokens.

Envoy reads the same template and descriptor set as `make up`; only ports and limits differ.
Under `bazel test` the files come from the target's data (`//gateway:config`); under plain
pytest from the source tree and `bazel-bin/`.

By default (`from_registry=False`) the route clusters are pinned to the topology's service
ports instead of coming from the registry: the tests of Envoy's own decisions (auth,
validation, limits, a refused or hung upstream) need an endpoint where nothing, or something
silent, listens, and the registry by design never hands Envoy an instance that fails its
health probes. Everything else in the bootstrap is the real one. Tests of the real wiring pass
`from_registry=True` (the `gateway` fixture, the failover test).
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from runtime.transport_security import TlsSettings
from tests.support.repo import REPO_ROOT
from tools.runner.binaries import binary
from tools.runner.gateway import ROUTE_CLUSTERS, Gateway, GatewaySettings, descriptor_set_in
from tools.runner.tokens import dev_signing_key, mint_token
from tools.runner.topology import Topology

HTTP_TIMEOUT_S = 30.0


def descriptor_set_path() -> Path:
    """The transcoder's descriptor set: in runfiles under Bazel, in bazel-bin/ otherwise."""
    path = descriptor_set_in(REPO_ROOT)
    if not path.exists():
        raise FileNotFoundError("no transcoder.binpb: add //gateway:config to the target's data")
    return path


PINNED_CLUSTER = """\
    - name: {name}
      type: STATIC
      connect_timeout: {connect_timeout_s}s
      per_connection_buffer_limit_bytes: 32768
      typed_extension_protocol_options: *upstream_http2
      load_assignment:
        cluster_name: {name}
        endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ]
"""


def pin_upstreams(config: str, topology: Topology, connect_timeout_s: int) -> str:
    """The rendered bootstrap without ADS and with the route clusters as static clusters at
    the topology's ports (the template's clusters list is the last thing in the file)."""
    lines = config.splitlines(keepends=True)
    start = lines.index("dynamic_resources:\n")
    end = next(i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "\n"))
    if not lines[-1].startswith("        endpoints:"):
        raise ValueError("gateway/envoy.yaml.tmpl no longer ends with its clusters list")
    pinned = [
        PINNED_CLUSTER.format(
            name=name,
            connect_timeout_s=connect_timeout_s,
            port=topology.port(name),
        )
        for name in ROUTE_CLUSTERS
    ]
    return "".join(lines[:start] + lines[end:] + pinned)


class PinnedGateway(Gateway):
    """The real gateway with its route clusters at fixed ports instead of from the registry."""

    def render(self) -> str:
        return pin_upstreams(super().render(), self.topology, self.settings.connect_timeout_s)


@contextmanager
def running_gateway(
    topology: Topology,
    settings: GatewaySettings | None = None,
    *,
    from_registry: bool = False,
    tls: TlsSettings | None = None,
) -> Iterator[Gateway]:
    """Envoy for `topology`, ready when this yields, stopped afterwards whatever happened.
    With `from_registry` the registry on the topology's port must already run; with `tls` (the
    gateway's certificate) Envoy speaks mutual TLS to it and the services."""
    kind = Gateway if from_registry else PinnedGateway
    gateway = kind(
        topology=topology,
        repo_root=REPO_ROOT,
        descriptor_set=descriptor_set_path(),
        settings=settings or GatewaySettings(),
        tls=tls,
    )
    try:
        yield gateway.start()
    finally:
        gateway.stop()


def token_for(customer_id: str, **claims: Any) -> str:
    """A development token for `customer_id`; keyword arguments override mint_token's."""
    return mint_token(dev_signing_key(REPO_ROOT), customer_id, **claims)


ADMIN = "shop-admin"


def admin_token() -> str:
    """A token with the admin role, for what only the shop may do: products, stock, credit."""
    return token_for(ADMIN, roles=["admin"])


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def call(
    gateway: Gateway,
    method: str,
    path: str,
    token: str | None = None,
    body: object = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One HTTP/1.1 request through the gateway; `body` is JSON-encoded unless it is bytes.

    Envoy may answer (413) and close before it has read a large body, so a failed send is
    not an error as long as a reply can be read.
    """
    sent_headers = dict(headers or {})
    if token is not None:
        sent_headers["authorization"] = f"Bearer {token}"
    payload: bytes | None = None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent_headers.setdefault("content-type", "application/json")
    connection = http.client.HTTPConnection(
        "127.0.0.1", gateway.topology.gateway_port, timeout=HTTP_TIMEOUT_S
    )
    try:
        with suppress(BrokenPipeError, ConnectionResetError):
            connection.request(method, path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        return Reply(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=response.read(),
        )
    finally:
        connection.close()


def grpcurl_run(
    gateway: Gateway, token: str, *args: str, reflection: bool = False
) -> subprocess.CompletedProcess[str]:
    """The real grpcurl through the gateway with `token`, given the descriptor set unless
    `reflection` (then it asks the gateway); `args` end with the address and method."""
    protoset = [] if reflection else ["-protoset", str(descriptor_set_path())]
    return subprocess.run(
        [
            str(binary("grpcurl")),
            "-plaintext",
            *protoset,
            "-H",
            f"authorization: Bearer {token}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


class BufProtocol(StrEnum):
    """What `buf curl --protocol` speaks; the gateway serves all three on its one port."""

    CONNECT = "connect"
    GRPC = "grpc"
    GRPC_WEB = "grpcweb"


@dataclass(frozen=True)
class BufReply:
    """What `buf curl` printed: the response message, or the error it decoded (a Connect error
    in JSON, `{"code": "not_found", "message": ...}`, whichever protocol carried it)."""

    returncode: int
    stdout: str
    stderr: str

    def message(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        assert self.returncode != 0, self.stdout
        return dict(json.loads(self.stderr))


def buf_curl(
    gateway: Gateway,
    protocol: BufProtocol,
    method: str,
    request: object = None,
    token: str | None = None,
    *,
    reflection: bool = False,
) -> BufReply:
    """The real `buf curl` calling `method` (`package.Service/Method`) through the gateway
    over HTTP/2 (prior knowledge), with the descriptor set as its schema unless `reflection`
    (then it asks the gateway, sending the token with the reflection calls too)."""
    auth = [] if token is None else ["--header", f"authorization: Bearer {token}"]
    if reflection:
        schema = [] if token is None else ["--reflect-header", f"authorization: Bearer {token}"]
    else:
        schema = ["--schema", str(descriptor_set_path())]
    done = subprocess.run(
        [
            str(binary("buf")),
            "curl",
            "--protocol",
            protocol.value,
            "--http2-prior-knowledge",
            *schema,
            *auth,
            "--data",
            json.dumps(request or {}),
            f"http://127.0.0.1:{gateway.topology.gateway_port}/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return BufReply(done.returncode, done.stdout, done.stderr)
