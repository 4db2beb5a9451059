"""Where a process of this host may be dialled: the IP SANs of its development certificates."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

from tools.certs.authority import IpAddress

SIOCGIFADDR = 0x8915
"""Linux ioctl: an interface's IPv4 address."""


def _interface_ipv4(name: str) -> IpAddress | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(
                probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode())
            )
        except OSError:
            return None  # no IPv4 address on this interface
    return ipaddress.ip_address(socket.inet_ntoa(packed[20:24]))


def host_addresses() -> list[IpAddress]:
    """Loopback, every interface's IPv4 address and what the host's name resolves to: where a
    process of this host may be dialled."""
    found: list[IpAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    candidates = [_interface_ipv4(name) for _, name in socket.if_nameindex()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    candidates += [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in candidates:
        if address is not None and address not in found:
            found.append(address)
    return found


def beyond_loopback() -> list[IpAddress]:
    """This host's addresses other processes on the network could reach it at."""
    return [a for a in host_addresses() if not a.is_loopback and a.version == 4]
