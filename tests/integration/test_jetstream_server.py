"""The nats-server Concord runs: JetStream on disk, duplicate ids dropped, messages kept across
a restart."""

from __future__ import annotations

import nats

from tools.runner.nats import NatsServer


async def test_duplicate_msg_id_is_stored_once(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="PROBE", subjects=["probe.>"])
        first = await js.publish("probe.a", b"one", headers={"Nats-Msg-Id": "m-1"})
        second = await js.publish("probe.a", b"one", headers={"Nats-Msg-Id": "m-1"})
        info = await js.stream_info("PROBE")
    finally:
        await nc.close()
    assert not first.duplicate
    assert second.duplicate
    assert info.state.messages == 1


async def test_acknowledged_message_survives_restart(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="PROBE", subjects=["probe.>"])
    await js.publish("probe.a", b"kept", headers={"Nats-Msg-Id": "m-2"})
    await nc.close()

    nats_server.kill()
    nats_server.start()

    nc = await nats.connect(nats_server.url)
    try:
        msg = await nc.jetstream().get_msg("PROBE", seq=1)
    finally:
        await nc.close()
    assert msg.data == b"kept"
