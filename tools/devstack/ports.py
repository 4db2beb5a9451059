"""Free loopback ports, so tests can run a second stack beside `make up`.

Ports come from below Linux's ephemeral range (32768+), where outgoing connections take their
local ports: a port picked there could be taken by a client socket before a server restarts on
it. A batch is held bound until all of it is chosen, so its ports are distinct.
"""

import random
import socket

PORT_RANGE = range(20_000, 32_000)


def free_ports(count: int) -> list[int]:
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for port in random.sample(PORT_RANGE, len(PORT_RANGE)):
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


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
