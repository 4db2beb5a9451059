"""The registry's instance table and the ADS stream's protocol state, with a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from registry.ads import AdsStream, XdsSnapshot
from registry.contract_diff import ChangeKind, diff_sources
from registry.instances import (
    ContractStanding,
    ContractStatus,
    Health,
    InstanceTable,
    ProbeOutcome,
)
from registry.xds_resources import CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL
from runtime.errors import NotFoundError
from runtime.transport_security import ENVOY_CA_SECRET, ENVOY_CERTIFICATE_SECRET

SERVICE = "shop.inventory.v1.InventoryService"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(clock: Clock) -> InstanceTable:
    return InstanceTable(lease_ttl_s=10, failures_to_evict=2, forget_after_s=30, clock=clock)


def test_instance_is_live_only_once_probed_serving() -> None:
    t = table(Clock())
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    assert t.live(SERVICE) == []
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    assert t.live(SERVICE) == [instance]


def test_an_instance_serving_an_incompatible_contract_is_never_live() -> None:
    t = table(Clock())
    pending = ContractStanding("sha256:" + "a" * 64, ContractStatus.PENDING)
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {}, pending)
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    assert t.live(SERVICE) == []  # not before buf has answered

    seen = t.feed.version
    broken = ContractStanding(
        pending.fingerprint, ContractStatus.INCOMPATIBLE, 0, "breaks v1", ("field deleted",)
    )
    assert t.set_contract(instance.instance_id, broken)
    assert t.live(SERVICE) == [] and t.feed.version == seen  # the live set did not change
    assert not t.set_contract(instance.instance_id, broken)

    compatible = ContractStanding(pending.fingerprint, ContractStatus.COMPATIBLE)
    assert t.set_contract(instance.instance_id, compatible)
    assert t.live(SERVICE) == [instance] and t.feed.version > seen


def test_one_failed_probe_is_tolerated_two_evict() -> None:
    t = table(Clock())
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    assert t.record_probe(instance.instance_id, ProbeOutcome.FAILED) is None
    change = t.record_probe(instance.instance_id, ProbeOutcome.FAILED)
    assert change is not None and change.after is Health.NOT_SERVING
    assert t.live(SERVICE) == []


def test_not_serving_answer_evicts_at_once() -> None:
    t = table(Clock())
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    t.record_probe(instance.instance_id, ProbeOutcome.NOT_SERVING)
    assert t.live(SERVICE) == []


def test_lapsed_lease_drops_then_forgets_and_heartbeat_revives_before_that() -> None:
    clock = Clock()
    t = table(clock)
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    clock.now += 11
    assert t.live(SERVICE) == []
    t.expire_leases()
    t.heartbeat(instance.instance_id)
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    assert t.live(SERVICE) == [instance]
    clock.now += 41
    _, forgotten = t.expire_leases()
    assert forgotten == [instance]
    with pytest.raises(NotFoundError):
        t.heartbeat(instance.instance_id)


def test_registering_the_same_address_again_replaces_the_old_instance() -> None:
    t = table(Clock())
    old = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    new = t.register(SERVICE, "127.0.0.1:1", "v2", {})
    assert [i.instance_id for i in t.all()] == [new.instance_id]
    with pytest.raises(NotFoundError):
        t.heartbeat(old.instance_id)


def test_feed_moves_only_when_the_live_set_changes() -> None:
    t = table(Clock())
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    before = t.feed.version
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    assert t.feed.version == before + 1
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    t.heartbeat(instance.instance_id)
    assert t.feed.version == before + 1


def request(
    type_url: str,
    version: str = "",
    nonce: str = "",
    names: tuple[str, ...] = (),
    error: bool = False,
) -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(
        type_url=type_url,
        version_info=version,
        response_nonce=nonce,
        resource_names=list(names),
        error_detail=status_pb2.Status(code=3, message="rejected") if error else None,
    )


def test_ads_sends_on_subscribe_stays_quiet_on_ack_and_pushes_changes() -> None:
    t = table(Clock())
    stream = AdsStream(XdsSnapshot(t, 1.0, warmup_s=0), nacks=Counter(), peer="test")
    [cds] = stream.on_request(request(CLUSTER_TYPE_URL))
    assert len(cds.resources) == 3
    assert stream.on_request(request(CLUSTER_TYPE_URL, cds.version_info, cds.nonce)) == []
    [eds] = stream.on_request(request(ENDPOINT_TYPE_URL, names=("inventory",)))
    assert len(eds.resources) == 1
    assert (
        stream.on_request(request(ENDPOINT_TYPE_URL, eds.version_info, eds.nonce, ("inventory",)))
        == []
    )
    instance = t.register(SERVICE, "127.0.0.1:1", "v1", {})
    t.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    [pushed] = stream.on_change()
    assert pushed.type_url == ENDPOINT_TYPE_URL and pushed.version_info != eds.version_info


def test_ads_nack_is_not_answered_with_the_same_version_and_stale_nonces_are_ignored() -> None:
    nacks: Counter[str] = Counter()
    stream = AdsStream(XdsSnapshot(table(Clock()), 1.0, warmup_s=0), nacks=nacks, peer="test")
    [cds] = stream.on_request(request(CLUSTER_TYPE_URL))
    assert stream.on_request(request(CLUSTER_TYPE_URL, "", cds.nonce, error=True)) == []
    assert nacks[CLUSTER_TYPE_URL] == 1
    assert stream.on_request(request(CLUSTER_TYPE_URL, "", "stale-nonce")) == []
    assert stream.on_change() == []


def test_eds_is_withheld_during_warm_up() -> None:
    snapshot = XdsSnapshot(table(Clock()), 1.0, warmup_s=60)
    stream = AdsStream(snapshot, nacks=Counter(), peer="test")
    assert stream.on_request(request(ENDPOINT_TYPE_URL, names=("inventory",))) == []
    snapshot.warm = True
    [eds] = stream.on_change()
    assert eds.type_url == ENDPOINT_TYPE_URL


def test_a_registry_on_mutual_tls_serves_clusters_that_present_the_gateway_certificate() -> None:
    plain = XdsSnapshot(table(Clock()), 1.0, warmup_s=0).resources(CLUSTER_TYPE_URL)
    secured = XdsSnapshot(table(Clock()), 1.0, warmup_s=0, upstream_tls=True).resources(
        CLUSTER_TYPE_URL
    )
    assert plain is not None and secured is not None
    assert all(not c.HasField("transport_socket") for c in plain.by_name.values())
    for built in secured.by_name.values():
        context = tls_pb2.UpstreamTlsContext()
        assert built.transport_socket.typed_config.Unpack(context)
        common = context.common_tls_context
        assert [s.name for s in common.tls_certificate_sds_secret_configs] == [
            ENVOY_CERTIFICATE_SECRET
        ]
        assert common.validation_context_sds_secret_config.name == ENVOY_CA_SECRET
    assert secured.version != plain.version


def test_source_diff_names_each_changed_file_once() -> None:
    changes = diff_sources(
        {"a.proto": "x\n", "b.proto": "y\n"}, {"a.proto": "x\n", "c.proto": "z\n"}, "v1", "v2"
    )
    assert [(c.path, c.kind) for c in changes] == [
        ("b.proto", ChangeKind.REMOVED),
        ("c.proto", ChangeKind.ADDED),
    ]
    assert "+z" in changes[1].unified_diff
