"""Builds the transcoder's descriptor set: the contracts plus the google.rpc error details.

Services put google.rpc details (BadRequest, ResourceInfo, ErrorInfo, ...) in their errors;
with `convert_grpc_status` Envoy prints them as JSON only if it can resolve their types, and
returns an empty body when it cannot. So the descriptor set Envoy reads is the one Bazel
builds from proto/ with google/rpc/{status,error_details}.proto (from the pinned
googleapis-common-protos wheel) and their imports added.

Usage: descriptor_set.py CONTRACTS_BINPB OUT_BINPB
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor, descriptor_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_TYPES = (status_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR)


def _with_imports(files: tuple[descriptor.FileDescriptor, ...]) -> list[descriptor.FileDescriptor]:
    """The files and everything they import, imports first (protoc's order)."""
    ordered: list[descriptor.FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: descriptor.FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    for file in files:
        visit(file)
    return ordered


def merge(contracts: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.FileDescriptorSet:
    merged = descriptor_pb2.FileDescriptorSet()
    merged.CopyFrom(contracts)
    present = {f.name for f in contracts.file}
    for file in _with_imports(ERROR_TYPES):
        if file.name not in present:
            file.CopyToProto(merged.file.add())
    return merged


def main(argv: list[str]) -> int:
    source, target = (Path(a) for a in argv[1:3])
    contracts = descriptor_pb2.FileDescriptorSet.FromString(source.read_bytes())
    target.write_bytes(merge(contracts).SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
