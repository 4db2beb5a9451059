"""A nats-server with JetStream on file storage, configured as Concord runs it: one server
(`NatsServer`, the default), or three clustered (`NatsCluster`, the scaled topology), whose
streams are replicated (CONCORD_NATS_REPLICAS=3) so a node can die without losing an
acknowledged message.

Each node of a cluster is a `NatsServer` with its own name, ports and store folder, and routes
to the others. The monitor endpoint (`/jsz`) tells who leads: the JetStream meta leader
(stream and consumer placement) and each stream's leader (which takes its writes); each node's
last sequence of a stream shows whether a restarted node has caught up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.runner.binaries import binary
from tools.runner.ports import port_open
from tools.runner.process import HoldsProcess, ManagedProcess

# `sync_interval: always` fsyncs every write: the default (2 minutes) can lose acknowledged
# messages on a crash, and Concord's outbox marks an event sent once JetStream acknowledged it.
CONFIG_TEMPLATE = """\
server_name: {server_name}
listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor_port}
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
  max_memory_store: 256MB
  max_file_store: 2GB
}}
"""
CLUSTER_TEMPLATE = """\
cluster {{
  name: {name}
  listen: 127.0.0.1:{port}
  routes: [
{routes}
  ]
}}
"""
CLUSTER_NAME = "concord"
CLUSTER_SIZE = 3
MONITOR_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ClusterMembership:
    """Where a node listens for the other nodes, and where they listen."""

    port: int
    peer_ports: tuple[int, ...]
    name: str = CLUSTER_NAME

    def config(self) -> str:
        routes = "\n".join(f"    nats-route://127.0.0.1:{p}" for p in self.peer_ports)
        return CLUSTER_TEMPLATE.format(name=self.name, port=self.port, routes=routes)


@dataclass
class NatsServer(HoldsProcess):
    port: int
    monitor_port: int
    data_dir: Path
    log_dir: Path
    detached: bool = False
    process: ManagedProcess | None = None
    name: str = "nats"
    """The process's name in logs (`<log_dir>/<name>.log`); a cluster node's is its server name."""
    server_name: str = ""
    """Unique within a cluster; defaults to `concord_<port>`."""
    cluster: ClusterMembership | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.config_path
        text = CONFIG_TEMPLATE.format(
            server_name=self.server_name or f"concord_{self.port}",
            port=self.port,
            monitor_port=self.monitor_port,
            store_dir=self.data_dir / "jetstream",
        )
        if self.cluster is not None:
            text += self.cluster.config()
        config.write_text(text)
        return config

    def argv(self) -> list[str]:
        """The command that runs this server once its config is written (`write_config`: the
        stack does it just before it starts the node, so `status` and `down` write nothing)."""
        return [str(binary("nats-server")), "-c", str(self.config_path)]

    def ready(self) -> bool:
        return port_open("127.0.0.1", self.port)

    def launch(self) -> ManagedProcess:
        """Starts the process without waiting for it (a cluster starts all its nodes first)."""
        self.write_config()
        self.process = ManagedProcess(
            name=self.name,
            argv=self.argv(),
            log_path=self.log_dir / f"{self.name}.log",
            detached=self.detached,
        ).start()
        return self.process

    def start(self, timeout_s: float = 20.0) -> NatsServer:
        self.launch().wait_until(self.ready, timeout_s)
        return self

    def jsz(self, streams: bool = False) -> dict[str, Any]:
        """This node's JetStream report from its monitor endpoint (`/jsz`)."""
        query = "?accounts=true&streams=true" if streams else ""
        url = f"http://127.0.0.1:{self.monitor_port}/jsz{query}"
        with urllib.request.urlopen(url, timeout=MONITOR_TIMEOUT_S) as reply:
            report: dict[str, Any] = json.load(reply)
        return report

    def streams(self) -> dict[str, dict[str, Any]]:
        """This node's view of every stream it holds a replica of: name -> stream detail
        (`cluster.leader`, `state.last_seq`, ...)."""
        return {
            detail["name"]: detail
            for account in self.jsz(streams=True).get("account_details", [])
            for detail in account.get("stream_detail", [])
        }


@dataclass
class NatsCluster:
    """Three nats-servers clustered as `concord`, each with JetStream on file storage in its
    own folder (`<data_dir>/<server name>`)."""

    nodes: list[NatsServer] = field(default_factory=list)

    @classmethod
    def on_ports(
        cls,
        client_ports: Sequence[int],
        monitor_ports: Sequence[int],
        cluster_ports: Sequence[int],
        data_dir: Path,
        log_dir: Path,
        detached: bool = False,
    ) -> NatsCluster:
        """One node per (client, monitor, cluster) port triple, named `nats-1`, `nats-2`, ..."""
        if not len(client_ports) == len(monitor_ports) == len(cluster_ports):
            raise ValueError("a cluster needs client, monitor and cluster ports for every node")
        nodes = []
        for i, (port, monitor, route) in enumerate(
            zip(client_ports, monitor_ports, cluster_ports, strict=True), start=1
        ):
            name = f"nats-{i}"
            peers = tuple(p for p in cluster_ports if p != route)
            nodes.append(
                NatsServer(
                    port=port,
                    monitor_port=monitor,
                    data_dir=data_dir / name,
                    log_dir=log_dir,
                    detached=detached,
                    name=name,
                    server_name=name,
                    cluster=ClusterMembership(route, peers),
                )
            )
        return cls(nodes)

    @property
    def urls(self) -> str:
        """Every node's client URL, comma-separated: the value of CONCORD_NATS_URL."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> NatsServer:
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(f"no node {server_name!r} in {[n.server_name for n in self.nodes]}")

    def start(self, timeout_s: float = 30.0) -> NatsCluster:
        """Starts every node, then waits until each accepts clients and a meta leader is
        elected (before that, JetStream requests fail with 'temporarily unavailable')."""
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            assert node.process is not None
            node.process.wait_until(node.ready, timeout_s)
        self.wait_for_meta_leader(timeout_s)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def stop_node(self, server_name: str) -> None:
        self.node(server_name).stop()

    def kill_node(self, server_name: str) -> None:
        """kill -9 one node: what a crashed machine looks like to the others."""
        self.node(server_name).kill()

    def start_node(self, server_name: str, timeout_s: float = 20.0) -> None:
        self.node(server_name).start(timeout_s)

    def restart_node(self, server_name: str, timeout_s: float = 20.0) -> None:
        self.stop_node(server_name)
        self.start_node(server_name, timeout_s)

    def _running(self) -> list[NatsServer]:
        return [node for node in self.nodes if node.running()]

    def _running_names(self) -> set[str]:
        return {node.server_name for node in self._running()}

    def meta_leader(self) -> str | None:
        """The server name of the JetStream meta leader, as the running nodes report it; None
        while they have none, do not agree yet, or still name a node that is down."""
        leaders = set()
        for node in self._running():
            try:
                leaders.add(node.jsz().get("meta_cluster", {}).get("leader") or None)
            except (OSError, urllib.error.URLError, ValueError):
                return None
        leader = leaders.pop() if len(leaders) == 1 else None
        return leader if leader in self._running_names() else None

    def wait_for_meta_leader(self, timeout_s: float = 30.0) -> str:
        return _wait_for(self.meta_leader, timeout_s, "a JetStream meta leader")

    def stream_leader(self, stream: str) -> str | None:
        """The server name of `stream`'s leader as the running nodes report it; None while
        it has none (or they still name a node that is down)."""
        for node in self._running():
            try:
                leader = node.streams().get(stream, {}).get("cluster", {}).get("leader")
            except (OSError, urllib.error.URLError, ValueError):
                continue
            if leader in self._running_names():
                return str(leader)
        return None

    def wait_for_stream_leader(self, stream: str, timeout_s: float = 30.0) -> str:
        return _wait_for(lambda: self.stream_leader(stream), timeout_s, f"a leader of {stream}")

    def last_sequences(self, stream: str) -> dict[str, int]:
        """Each running node's last sequence of `stream` (-1 when it holds no replica of it,
        or does not answer): a restarted node has caught up when it equals the others'."""
        sequences = {}
        for node in self._running():
            try:
                detail = node.streams().get(stream)
            except (OSError, urllib.error.URLError, ValueError):
                detail = None
            sequences[node.server_name] = int(detail["state"]["last_seq"]) if detail else -1
        return sequences

    def caught_up(self, streams: Sequence[str]) -> bool:
        """True when every node runs and holds the same last sequence of every stream."""
        if len(self._running()) != len(self.nodes):
            return False
        return all(len(set(self.last_sequences(s).values())) == 1 for s in streams)


def _wait_for(found: Any, timeout_s: float, what: str) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return str(value)
        time.sleep(0.1)
    raise TimeoutError(f"no {what} after {timeout_s:.0f} s")
