"""`python -m tools.certs [--dir .data/certs]`: a development CA (kept if it exists) and a fresh
certificate for every process, valid on this host's addresses (docs/deploy.md#certificates)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from pathlib import Path

from runtime import catalogue
from tools.certs.authority import CERT_DAYS, load_or_create_authority, mint
from tools.certs.host import host_addresses

PLATFORM_PROCESSES = ("registry", "gateway", "operator")
"""`operator`: the dev CLI (`python -m tools.devstack`) and grpcurl run with it, as an
internal caller."""


def processes() -> list[str]:
    """Every identity a deployment needs: the platform's and the catalogue's processes."""
    return [*PLATFORM_PROCESSES, *(p.name for p in catalogue.CATALOGUE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".data/certs"))
    parser.add_argument("--days", type=int, default=CERT_DAYS, help="certificate lifetime")
    parser.add_argument("--ip", action="append", default=[], help="another IP SAN")
    parser.add_argument("--dns", action="append", default=[], help="another DNS SAN")
    parser.add_argument("--new-ca", action="store_true", help="replace the CA too")
    args = parser.parse_args()
    authority = load_or_create_authority(args.dir, new=args.new_ca)
    addresses = [*host_addresses(), *(ipaddress.ip_address(ip) for ip in args.ip)]
    names = ["localhost", socket.gethostname(), *args.dns]
    minted = mint(args.dir, processes(), addresses, names, args.days, authority)
    print(
        f"CA {args.dir / 'ca.pem'} (expires {authority.certificate.not_valid_after_utc:%Y-%m-%d})"
    )
    for process, files in minted.items():
        print(f"{process}: {files.cert_file} {files.key_file}")
    print("addresses: " + ", ".join(str(a) for a in addresses) + "; names: " + ", ".join(names))


if __name__ == "__main__":
    main()
