"""Free loopback ports, so tests can run a second stack beside `make up`.

Ports come from below Linux's ephemeral range (32768+), where outgoing connections take their
local ports: a port picked there could be taken by a client socket before a server restarts on
it. A batch is held bound until all of it is chosen, so its ports are distinct.

Tests run side by side in several processes, and a port is free between the moment it is
chosen and the moment its server binds it: two tests could choose the same one. So every chosen
port is also reserved, for `RESERVATION_S`, in a file all test processes share (under a lock),
and a reserved port is never chosen again while its reservation lasts.
"""

import fcntl
import json
import random
import socket
import tempfile
import time
from pathlib import Path

PORT_RANGE = range(20_000, 32_000)
RESERVATION_S = 300.0
RESERVATIONS = Path(tempfile.gettempdir()) / "concord-port-reservations.json"


def free_ports(count: int) -> list[int]:
    with RESERVATIONS.open("a+") as ledger:
        fcntl.flock(ledger, fcntl.LOCK_EX)
        ledger.seek(0)
        now = time.time()
        try:
            reserved = {int(p): t for p, t in json.loads(ledger.read() or "{}").items() if t > now}
        except ValueError:
            reserved = {}
        ports = _bindable_ports(count, set(reserved))
        reserved.update(dict.fromkeys(ports, now + RESERVATION_S))
        ledger.seek(0)
        ledger.truncate()
        ledger.write(json.dumps(reserved))
        return ports


def _bindable_ports(count: int, skip: set[int]) -> list[int]:
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for port in random.sample(PORT_RANGE, len(PORT_RANGE)):
            if port in skip:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            ports.append(port)
            if len(ports) == count:
                return ports
        raise RuntimeError(f"fewer than {count} free ports in {PORT_RANGE}")
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until_bindable(port: int, timeout_s: float, owner: str) -> None:
    """Returns once `port` can be listened on. The default service ports (5005x) lie in Linux's
    ephemeral range, so a client's connection elsewhere may have taken one as its local port and
    hold it in TIME_WAIT for a minute: wait that out, saying so, rather than let the server
    die on 'Address already in use'."""
    if bindable(port):
        return
    if port_open("127.0.0.1", port):
        raise RuntimeError(f"{owner}: port {port} is taken by another listening process")
    print(
        f"{owner}: waiting for port {port}, held by a closing connection (up to {timeout_s:.0f} s)"
    )
    deadline = time.monotonic() + timeout_s
    while not bindable(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{owner}: port {port} is still in use after {timeout_s:.0f} s")
        time.sleep(1.0)


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
