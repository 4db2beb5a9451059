"""Envoy's Aggregated Discovery Service (state of the world) over the registry's live set.

One gRPC stream per Envoy carries CDS and EDS. For each type the stream remembers what Envoy
subscribed to and the version and nonce last sent: a request echoing that nonce either ACKs
the version or, with error_detail, NACKs it (logged and counted; the same version is not sent
again, the next change is); a request with an older nonce is stale and ignored (xDS protocol).
Whenever the live set changes, every stream gets the types whose version moved.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from registry.feed import ChangeFeed, FeedClosedError
from registry.instances import InstanceTable
from registry.xds_resources import (
    CLUSTER_TYPE_URL,
    CLUSTERS,
    ENDPOINT_TYPE_URL,
    Resources,
    clusters,
    load_assignment,
)
from runtime.logs import get_logger

log = get_logger(__name__)

SERVICE_NAME = "envoy.service.discovery.v3.AggregatedDiscoveryService"


class XdsSnapshot:
    """The current CDS and EDS resources. EDS is withheld during warm-up after a start, so an
    Envoy that kept endpoints from before a registry restart keeps them until the instances
    have registered again, instead of getting an empty set."""

    def __init__(
        self,
        table: InstanceTable,
        connect_timeout_s: float,
        warmup_s: float,
        upstream_tls: bool = False,
    ) -> None:
        self._table = table
        self._clusters = clusters(connect_timeout_s, upstream_tls)
        self._warmup_s = warmup_s
        self.warm = warmup_s <= 0

    @property
    def feed(self) -> ChangeFeed:
        return self._table.feed

    def resources(self, type_url: str) -> Resources | None:
        if type_url == CLUSTER_TYPE_URL:
            return self._clusters
        if type_url == ENDPOINT_TYPE_URL and self.warm:
            return Resources(
                ENDPOINT_TYPE_URL,
                {
                    name: load_assignment(name, self._table.live(service))
                    for name, service in CLUSTERS.items()
                },
            )
        return None

    async def warm_up(self) -> None:
        """Background job: ends the warm-up and wakes the streams waiting for EDS."""
        if not self.warm:
            await asyncio.sleep(self._warmup_s)
            self.warm = True
            log.info("xds_warm", warmup_s=self._warmup_s)
            self.feed.publish()


@dataclass
class _Subscription:
    names: set[str]
    sent_version: str | None = None
    nonce: str | None = None
    owed: bool = True
    """A response is due as soon as the resources exist (warm-up)."""


class _Signal(enum.Enum):
    CHANGED = "changed"
    ENDED = "ended"


class AdsStream:
    """The protocol state of one Envoy's stream: requests and changes in, responses out."""

    def __init__(self, snapshot: XdsSnapshot, nacks: Counter[str], peer: str) -> None:
        self._snapshot = snapshot
        self._subscriptions: dict[str, _Subscription] = {}
        self._nonces = itertools.count(1)
        self._nacks = nacks
        self._peer = peer
        self.node_id = ""

    def on_request(self, request: Any) -> list[Any]:
        self.node_id = request.node.id or self.node_id
        type_url = request.type_url
        if type_url not in (CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL):
            log.warning("xds_type_not_served", type_url=type_url, node=self.node_id)
            return []
        names = set(request.resource_names)
        sub = self._subscriptions.get(type_url)
        if sub is None or not request.response_nonce:
            self._subscriptions[type_url] = sub = _Subscription(names)
            return self._respond(type_url, sub, force=True)
        if request.response_nonce != sub.nonce:
            return []  # answers a response already superseded
        if request.error_detail.code:
            self._nacks[type_url] += 1
            log.warning(
                "xds_nack",
                node=self.node_id,
                type_url=type_url,
                version=sub.sent_version,
                error=request.error_detail.message,
                nacks_total=self._nacks[type_url],
            )
            sub.names = names
            return []
        if names != sub.names:
            sub.names = names
            return self._respond(type_url, sub, force=True)
        if request.version_info == sub.sent_version:
            log.debug("xds_ack", node=self.node_id, type_url=type_url, version=sub.sent_version)
        return []

    def on_change(self) -> list[Any]:
        responses = []
        for type_url, sub in self._subscriptions.items():
            responses.extend(self._respond(type_url, sub, force=sub.owed))
        return responses

    def _respond(self, type_url: str, sub: _Subscription, force: bool) -> list[Any]:
        resources = self._snapshot.resources(type_url)
        if resources is None:
            sub.owed = True
            return []
        version = resources.version
        if not force and version == sub.sent_version:
            return []
        sub.sent_version, sub.nonce, sub.owed = version, str(next(self._nonces)), False
        packed = resources.packed(sub.names)
        log.info(
            "xds_push",
            node=self.node_id,
            peer=self._peer,
            type_url=type_url,
            version=version,
            resources=len(packed),
        )
        return [
            discovery_pb2.DiscoveryResponse(
                version_info=version, resources=packed, type_url=type_url, nonce=sub.nonce
            )
        ]


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, snapshot: XdsSnapshot) -> None:
        self._snapshot = snapshot
        self.nacks: Counter[str] = Counter()

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        stream = AdsStream(self._snapshot, self.nacks, context.peer())
        events: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(_read(request_iterator, events), name="ads-reader")
        watcher = asyncio.create_task(_watch(self._snapshot.feed, events), name="ads-watcher")
        log.info("xds_stream_opened", peer=context.peer())
        try:
            while True:
                event = await events.get()
                if event is _Signal.ENDED:
                    return
                responses = (
                    stream.on_change() if event is _Signal.CHANGED else stream.on_request(event)
                )
                for response in responses:
                    yield response
        finally:
            reader.cancel()
            watcher.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)
            log.info("xds_stream_closed", peer=context.peer(), node=stream.node_id)

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "only state-of-the-world ADS is served")
        yield  # pragma: no cover - makes this an async generator like the generated stub


async def _read(requests: AsyncIterator[Any], events: asyncio.Queue[Any]) -> None:
    try:
        async for request in requests:
            await events.put(request)
    finally:
        events.put_nowait(_Signal.ENDED)


async def _watch(feed: ChangeFeed, events: asyncio.Queue[Any]) -> None:
    seen = feed.version
    try:
        while True:
            seen = await feed.wait_past(seen)
            await events.put(_Signal.CHANGED)
    except FeedClosedError:
        events.put_nowait(_Signal.ENDED)
