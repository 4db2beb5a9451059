"""Starts the registry: `python -m registry` (or the Bazel py_binary).

Discovery, the contract registry and Envoy's ADS share one gRPC server on the registry's port.
The registry runs on the service platform and does not register with itself. With
`CONCORD_REGISTRY_STATE=memory` (the default) it needs no NATS; with `jetstream` it connects
to NATS, loads the shared instance table and contract versions before it listens, and follows
them in the background (shared_state.py). It also answers the gateway's reflection, for the
public services only (public_reflection.py), and receives the gateway's spans when no OTLP
collector is configured (span_receiver.py).
"""

from concord.registry.v1 import contracts_service_pb2_grpc, discovery_service_pb2_grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from registry import (
    ads,
    contract_store,
    contracts_api,
    discovery_api,
    public_reflection,
    span_receiver,
)
from registry.breaking import BreakingCheck
from registry.compatibility import compatibility
from registry.contract_gate import ContractGate
from registry.instances import InstanceTable
from registry.prober import Prober
from registry.settings import RegistrySettings
from registry.shared_state import local_state, shared_state
from runtime import transport_security
from runtime.server import Platform, ServiceParts, run_service


def wire(platform: Platform) -> ServiceParts:
    settings = RegistrySettings.from_env()
    table = InstanceTable(
        lease_ttl_s=settings.lease_ttl_s,
        failures_to_evict=settings.probe_failures_to_evict,
        forget_after_s=settings.forget_after_s,
    )
    state = (
        shared_state(platform.bus, table, platform.settings.nats_replicas)
        if settings.shared
        else local_state(table, platform.db)
    )
    # A replica loads the shared table before it listens: nothing to warm up after a start.
    xds_warmup_s = 0.0 if settings.shared else settings.xds_warmup_s
    resolve_warmup_s = 0.0 if settings.shared else settings.resolve_warmup_s
    prober = Prober(state.instances, settings)
    # A registry that speaks mutual TLS has services that do too: Envoy must reach them so.
    snapshot = ads.XdsSnapshot(
        table,
        settings.xds_connect_timeout_s,
        xds_warmup_s,
        upstream_tls=transport_security.configured() is not None,
    )
    breaking = BreakingCheck(
        settings.buf_path,
        settings.buf_timeout_s,
        cache_dir=platform.settings.data_dir / platform.settings.service / "buf-cache",
    )

    async def instance_findings(candidate: bytes, published: bytes) -> list[str]:
        """An instance's contract judged as a publication would be: every channel."""
        verdict = await compatibility(published, candidate, breaking)
        return [str(finding) for finding in verdict.findings]

    gate = ContractGate(
        state.contracts,
        instance_findings,
        state.instances,
        settings.contract_refresh_s,
        settings.contract_images_max,
        only_replica=not settings.shared,
    )
    spans = span_receiver.SpanReceiver(platform.settings.data_dir)
    return ServiceParts(
        servicers=[
            (
                discovery_service_pb2_grpc.add_DiscoveryServiceServicer_to_server,
                discovery_api.DiscoveryApi(
                    state.instances, prober, gate, settings.lease_ttl_s, resolve_warmup_s
                ),
                discovery_api.SERVICE_NAME,
            ),
            (
                contracts_service_pb2_grpc.add_ContractsServiceServicer_to_server,
                contracts_api.ContractsApi(state.contracts, breaking),
                contracts_api.SERVICE_NAME,
            ),
            (
                ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server,
                ads.AdsServer(snapshot),
                ads.SERVICE_NAME,
            ),
            (
                trace_service_pb2_grpc.add_TraceServiceServicer_to_server,
                spans,
                span_receiver.SERVICE_NAME,
            ),
        ],
        handlers=[public_reflection.handler()],
        background=[prober.run, snapshot.warm_up, gate.run, *state.background],
        on_drain=[table.feed.close],
        opening=state.opening,
    )


if __name__ == "__main__":
    run_service("registry", contract_store.MIGRATIONS, wire, needs_bus=False, registers=False)
