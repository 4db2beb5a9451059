"""h2load (Debian's nghttp2-client), the HTTP/2 load generator the gateway figures use: a C
client that costs far less per request than the Envoy and Python servers it measures.

gRPC through h2load: a POST of one length-prefixed protobuf message (`-d`) with
`content-type: application/grpc` and `te: trailers`. h2load cannot read trailers, so a gRPC
error would pass as a 200: callers check one call with a real client first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


class H2loadMissingError(RuntimeError):
    """h2load is not installed: `make bench` installs nghttp2-client (tools/setup.sh)."""


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    mean_latency_s: float
    succeeded: int
    requests: int


def grpc_body(message: Message, folder: Path) -> Path:
    """A file holding `message` as one uncompressed gRPC frame, for `h2load -d`."""
    payload = message.SerializeToString()
    path = folder / f"{type(message).__name__}.grpc"
    path.write_bytes(b"\x00" + len(payload).to_bytes(4, "big") + payload)
    return path


def run(
    url: str,
    *,
    requests: int,
    connections: int = 1,
    streams: int = 1,
    headers: dict[str, str] | None = None,
    body: Path | None = None,
) -> Load:
    """One h2load run over HTTP/2 cleartext (prior knowledge), parsed."""
    h2load = shutil.which("h2load")
    if h2load is None:
        raise H2loadMissingError("h2load not found: apt-get install nghttp2-client")
    argv = [h2load, "-n", str(requests), "-c", str(connections), "-m", str(streams)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if body is not None:
        argv += ["-d", str(body)]
    output = subprocess.run([*argv, url], capture_output=True, text=True, timeout=600, check=True)
    return parse(output.stdout, requests)


def parse(text: str, requests: int) -> Load:
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    latency = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", text)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
    if rate is None or latency is None or done is None:
        raise ValueError(f"unexpected h2load output:\n{text}")
    load = Load(
        requests_per_s=float(rate.group(1)),
        mean_latency_s=float(latency.group(1)) * UNITS_S[latency.group(2)],
        succeeded=int(done.group(1)),
        requests=requests,
    )
    if load.succeeded != requests or " 2xx" not in text or re.search(r"\b[1-9]\d* [45]xx", text):
        raise AssertionError(f"h2load: not every request succeeded:\n{text}")
    return load
