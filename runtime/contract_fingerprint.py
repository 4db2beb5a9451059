"""The fingerprint of the contract a service was built from, the same on both sides of discovery.

An instance computes it at start from the generated modules it imports (the default descriptor
pool); the registry computes it from each published image. Both go through `fingerprint`, so the
same files give the same digest whichever compiler produced them:

- the files are the one declaring the service and its imports, transitively, in name order;
- google/protobuf/* is left out: the well-known types differ between protoc and buf releases
  and are not Concord's contracts (registry/breaking.py ignores them for the same reason);
- each file is normalised before hashing: no source info, no json_name (buf fills it in,
  protoc's generated modules leave it out), no unknown fields (buf's image extensions);
- the digest is sha256 over each normalised file's deterministic serialization, written as
  "sha256:<hex>".

`CONCORD_CONTRACT_IMAGE_PATH` (tests only) makes an instance take its contract from a
FileDescriptorSet file instead of its generated modules: a way to start a real process that
claims a contract it was not built from (a stale or rogue deploy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool

from runtime.settings import env_str

IMAGE_PATH_ENV = "CONCORD_CONTRACT_IMAGE_PATH"
WELL_KNOWN_PREFIX = "google/protobuf/"
FINGERPRINT_PREFIX = "sha256:"

FileSet = Mapping[str, descriptor_pb2.FileDescriptorProto]
"""Files of one image by import path."""


class ContractImageError(ValueError):
    """The image cannot stand for the service: unreadable, or it does not declare it."""


@dataclass(frozen=True)
class ServiceContract:
    """What an instance registers for one service: its fingerprint and the image behind it."""

    service_name: str
    fingerprint: str
    image: bytes
    """A self-contained FileDescriptorSet: the service's file and every import, imports first."""


def files_of_image(raw: bytes) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    try:
        image = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except Exception as error:  # DecodeError, or a message that is not a descriptor set
        raise ContractImageError("not a serialized google.protobuf.FileDescriptorSet") from error
    return {f.name: f for f in image.file}


def declaring_file(files: FileSet, service_name: str) -> str:
    """The import path of the file that declares `service_name` (full gRPC name)."""
    package, _, short = service_name.rpartition(".")
    for name in sorted(files):
        f = files[name]
        if f.package == package and any(s.name == short for s in f.service):
            return name
    raise ContractImageError(f"no file of the image declares {service_name}")


def closure(files: FileSet, root: str) -> list[descriptor_pb2.FileDescriptorProto]:
    """`root` and its imports, transitively, imports before importers (what buf needs)."""
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in files:
            raise ContractImageError(f"the image lacks {name}, imported by the service's files")
        for dependency in sorted(files[name].dependency):
            visit(dependency)
        ordered.append(files[name])

    visit(root)
    return ordered


def _normalised(f: descriptor_pb2.FileDescriptorProto) -> bytes:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(f)
    copy.ClearField("source_code_info")
    copy.DiscardUnknownFields()
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in [*message.field, *message.extension]:
            field.ClearField("json_name")
    for extension in copy.extension:
        extension.ClearField("json_name")
    return copy.SerializeToString(deterministic=True)


def fingerprint(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> str:
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        if f.name.startswith(WELL_KNOWN_PREFIX):
            continue
        body = _normalised(f)
        digest.update(f"{f.name}\n{len(body)}\n".encode())
        digest.update(body)
    return FINGERPRINT_PREFIX + digest.hexdigest()


def service_contract(files: FileSet, service_name: str) -> ServiceContract:
    """The fingerprint of `service_name` in an image, and the part of the image behind it."""
    chosen = closure(files, declaring_file(files, service_name))
    image = descriptor_pb2.FileDescriptorSet(file=chosen).SerializeToString(deterministic=True)
    return ServiceContract(service_name, fingerprint(chosen), image)


def _generated_files(service_names: Iterable[str]) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The files of the generated modules imported so far that the services need."""
    pool = descriptor_pool.Default()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pending = []
    for name in service_names:
        try:
            pending.append(pool.FindServiceByName(name).file)
        except KeyError as error:
            raise ContractImageError(f"no generated module imported declares {name}") from error
    while pending:
        file = pending.pop()
        if file.name in files:
            continue
        files[file.name] = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
        pending.extend(file.dependencies)
    return files


def own_contracts(service_names: Iterable[str]) -> dict[str, ServiceContract]:
    """Each service's contract as this process was built, or as CONCORD_CONTRACT_IMAGE_PATH
    says (tests only). Deterministic: the same build gives the same fingerprints."""
    names = list(service_names)
    override = env_str(IMAGE_PATH_ENV, "")
    files = files_of_image(Path(override).read_bytes()) if override else _generated_files(names)
    return {name: service_contract(files, name) for name in names}
