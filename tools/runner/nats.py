"""A nats-server with JetStream on file storage, configured as Concord runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.runner.binaries import binary
from tools.runner.ports import port_open
from tools.runner.process import ManagedProcess

# `sync_interval: always` fsyncs every write: the default (2 minutes) can lose acknowledged
# messages on a crash, and Concord's outbox marks an event sent once JetStream acknowledged it.
CONFIG_TEMPLATE = """\
server_name: concord_{port}
listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor_port}
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
  max_memory_store: 256MB
  max_file_store: 2GB
}}
"""


@dataclass
class NatsServer:
    port: int
    monitor_port: int
    data_dir: Path
    log_dir: Path
    detached: bool = False
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        config.write_text(
            CONFIG_TEMPLATE.format(
                port=self.port,
                monitor_port=self.monitor_port,
                store_dir=self.data_dir / "jetstream",
            )
        )
        return config

    def start(self, timeout_s: float = 20.0) -> NatsServer:
        config = self.write_config()
        self.process = ManagedProcess(
            name="nats",
            argv=[str(binary("nats-server")), "-c", str(config)],
            log_path=self.log_dir / "nats.log",
            detached=self.detached,
        ).start()
        self.process.wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
