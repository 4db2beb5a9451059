"""The NATS settings and cluster configuration a deployment switches to: a list of servers in
CONCORD_NATS_URL, and three nodes that each route to the other two."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.errors import BadRequestError

from runtime.bus import leader_unavailable
from runtime.settings import nats_servers
from tools.runner.nats import NatsCluster, NatsServer


def test_one_url_or_a_comma_separated_list_of_servers() -> None:
    assert nats_servers("nats://127.0.0.1:4222") == ("nats://127.0.0.1:4222",)
    assert nats_servers(" nats://a:1, nats://b:2,,nats://c:3 ") == (
        "nats://a:1",
        "nats://b:2",
        "nats://c:3",
    )
    with pytest.raises(ValueError, match="names no server"):
        nats_servers(" , ")


def test_each_node_has_its_own_name_folder_and_routes_to_the_others(tmp_path: Path) -> None:
    cluster = NatsCluster.on_ports(
        [4222, 4223, 4224], [8222, 8223, 8224], [6222, 6223, 6224], tmp_path, tmp_path / "logs"
    )

    assert cluster.urls == "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
    config = cluster.node("nats-2").write_config().read_text()
    assert "server_name: nats-2" in config
    assert "listen: 127.0.0.1:4223" in config
    assert "http: 127.0.0.1:8223" in config
    assert f'store_dir: "{tmp_path / "nats-2" / "jetstream"}"' in config
    assert "sync_interval: always" in config
    assert "name: concord" in config
    assert "listen: 127.0.0.1:6223" in config
    assert "nats-route://127.0.0.1:6222" in config
    assert "nats-route://127.0.0.1:6224" in config
    assert "6223\n  ]" not in config  # no route to itself


def test_a_single_server_has_no_cluster_block(tmp_path: Path) -> None:
    config = NatsServer(4222, 8222, tmp_path, tmp_path).write_config().read_text()
    assert "server_name: concord_4222" in config
    assert "cluster" not in config


@pytest.mark.parametrize(
    ("err_code", "retried"),
    [
        (10005, True),  # no suitable peers for placement: a cluster still forming
        (10008, True),  # no meta leader yet
        (10023, True),  # insufficient resources: fewer peers known than replicas
        (10058, False),  # stream name already in use with a different configuration
    ],
)
def test_a_forming_cluster_is_waited_for_a_bad_stream_definition_is_not(
    err_code: int, retried: bool
) -> None:
    error = BadRequestError(code=400, err_code=err_code, description="from nats-server")
    assert leader_unavailable(error) is retried
