"""What the registry tells Envoy: one EDS cluster per service, endpoints = its live instances.

Live includes routable: an instance whose contract breaks the latest published version
(contract_gate.py) is never an endpoint, whatever its health.

Clusters are the catalogue's processes with a public service (runtime/catalogue.py), named
after the process as the gateway's routes name them; each maps to the gRPC service whose live
instances become the cluster's endpoints. Clusters speak HTTP/2 upstream (gRPC) with the same
protocol options the gateway's static clusters had. When the registry itself speaks mutual
TLS (runtime/transport_security.py), so do the services it lists: every cluster then carries
an UpstreamTlsContext that presents the gateway's certificate and verifies the service's
against the CA, both by name from the secrets Envoy's bootstrap defines from files
(gateway/envoy.yaml.tmpl), so the registry never needs the gateway's file paths.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from registry.instances import Instance
from runtime import catalogue
from runtime.logs import get_logger
from runtime.transport_security import ENVOY_CA_SECRET, ENVOY_CERTIFICATE_SECRET

log = get_logger(__name__)

CLUSTER_TYPE_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE_URL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HTTP_OPTIONS_EXTENSION = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"

CLUSTERS: dict[str, str] = {p.name: p.public_services[0] for p in catalogue.gateway_processes()}
"""Envoy cluster name -> the gRPC service whose live instances are its endpoints."""

PER_CONNECTION_BUFFER_LIMIT_BYTES = 32768
HTTP2_MAX_CONCURRENT_STREAMS = 100
HTTP2_INITIAL_STREAM_WINDOW_BYTES = 65536
HTTP2_INITIAL_CONNECTION_WINDOW_BYTES = 1048576


@dataclass(frozen=True)
class Resources:
    """One type's complete set, with a version that changes exactly when the content does."""

    type_url: str
    by_name: dict[str, Message]

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.by_name):
            digest.update(name.encode())
            digest.update(self.by_name[name].SerializeToString(deterministic=True))
        return digest.hexdigest()[:16]

    def packed(self, names: set[str]) -> list[any_pb2.Any]:
        """The requested resources (all of them for a wildcard, empty, subscription)."""
        chosen = sorted(self.by_name) if not names else sorted(names & self.by_name.keys())
        out = []
        for name in chosen:
            packed = any_pb2.Any()
            packed.Pack(self.by_name[name])
            out.append(packed)
        return out


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(int(value * 1000))
    return duration


def upstream_tls() -> base_pb2.TransportSocket:
    """Mutual TLS to an upstream with the secrets the gateway's bootstrap defines."""
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_certificate_sds_secret_configs=[
                secret_pb2.SdsSecretConfig(name=ENVOY_CERTIFICATE_SECRET)
            ],
            validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(name=ENVOY_CA_SECRET),
        )
    )
    packed = any_pb2.Any()
    packed.Pack(context)
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=packed)


def cluster(name: str, connect_timeout_s: float, tls: bool = False) -> cluster_pb2.Cluster:
    http2 = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions(
                max_concurrent_streams=wrappers_pb2.UInt32Value(value=HTTP2_MAX_CONCURRENT_STREAMS),
                initial_stream_window_size=wrappers_pb2.UInt32Value(
                    value=HTTP2_INITIAL_STREAM_WINDOW_BYTES
                ),
                initial_connection_window_size=wrappers_pb2.UInt32Value(
                    value=HTTP2_INITIAL_CONNECTION_WINDOW_BYTES
                ),
            )
        )
    )
    options = any_pb2.Any()
    options.Pack(http2)
    built = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                resource_api_version=config_source_pb2.V3,
            )
        ),
        connect_timeout=_seconds(connect_timeout_s),
        per_connection_buffer_limit_bytes=wrappers_pb2.UInt32Value(
            value=PER_CONNECTION_BUFFER_LIMIT_BYTES
        ),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        typed_extension_protocol_options={HTTP_OPTIONS_EXTENSION: options},
    )
    if tls:
        built.transport_socket.CopyFrom(upstream_tls())
    return built


def clusters(connect_timeout_s: float, tls: bool = False) -> Resources:
    return Resources(
        CLUSTER_TYPE_URL, {name: cluster(name, connect_timeout_s, tls) for name in CLUSTERS}
    )


def _socket_address(instance: Instance) -> address_pb2.SocketAddress | None:
    host, _, port = instance.address.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # EDS endpoints must be IP addresses: Envoy does not resolve names there.
        log.warning(
            "xds_endpoint_skipped", instance_id=instance.instance_id, address=instance.address
        )
        return None
    return address_pb2.SocketAddress(address=host, port_value=int(port))


def load_assignment(
    cluster_name: str, instances: Sequence[Instance]
) -> endpoint_pb2.ClusterLoadAssignment:
    endpoints = []
    for instance in instances:
        socket = _socket_address(instance)
        if socket is not None:
            endpoints.append(
                endpoint_components_pb2.LbEndpoint(
                    endpoint=endpoint_components_pb2.Endpoint(
                        address=address_pb2.Address(socket_address=socket)
                    )
                )
            )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=endpoints)],
    )
