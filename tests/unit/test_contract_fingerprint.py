"""The contract fingerprint: the same files give the same digest whoever compiled them, and any
edit of the service's contract moves it (runtime/contract_fingerprint.py)."""

from __future__ import annotations

import re

import pytest
from google.protobuf import descriptor_pb2
from shop.inventory.v1 import inventory_service_pb2

from runtime import contract_fingerprint
from runtime.contract_fingerprint import ContractImageError

SERVICE = "shop.inventory.v1.InventoryService"
SERVICE_FILE = inventory_service_pb2.DESCRIPTOR.name


def generated_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    contract = contract_fingerprint.own_contracts([SERVICE])[SERVICE]
    return contract_fingerprint.files_of_image(contract.image)


def renumbered(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
    response = next(m for m in files[SERVICE_FILE].message_type if m.name == "GetProductResponse")
    response.field[0].number = 7


def test_the_same_build_gives_the_same_fingerprint() -> None:
    first = contract_fingerprint.own_contracts([SERVICE])[SERVICE]
    again = contract_fingerprint.own_contracts([SERVICE])[SERVICE]
    assert first == again
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64
    assert contract_fingerprint.service_contract(generated_files(), SERVICE) == first


def test_source_info_json_names_and_well_known_types_do_not_move_it() -> None:
    files = generated_files()
    before = contract_fingerprint.service_contract(files, SERVICE).fingerprint
    own = files[SERVICE_FILE]
    own.source_code_info.location.add(path=[4, 0], span=[1, 0, 5])
    for message in own.message_type:
        for field in message.field:
            field.json_name = field.name.title()
    timestamp = files["google/protobuf/timestamp.proto"]
    timestamp.options.java_package = "elsewhere"
    assert contract_fingerprint.service_contract(files, SERVICE).fingerprint == before


def test_a_renumbered_response_field_moves_it() -> None:
    files = generated_files()
    before = contract_fingerprint.service_contract(files, SERVICE).fingerprint
    renumbered(files)
    assert contract_fingerprint.service_contract(files, SERVICE).fingerprint != before


def test_the_image_is_self_contained_with_imports_first() -> None:
    image = contract_fingerprint.own_contracts([SERVICE])[SERVICE].image
    names = [f.name for f in descriptor_pb2.FileDescriptorSet.FromString(image).file]
    assert names[-1] == SERVICE_FILE
    for position, f in enumerate(descriptor_pb2.FileDescriptorSet.FromString(image).file):
        assert set(f.dependency) <= set(names[:position]), f.name


def test_an_image_that_cannot_stand_for_the_service_is_refused_saying_why() -> None:
    files = generated_files()
    with pytest.raises(
        ContractImageError, match=re.escape("no file of the image declares shop.x.v1.X")
    ):
        contract_fingerprint.service_contract(files, "shop.x.v1.X")
    del files["shop/inventory/v1/inventory.proto"]
    with pytest.raises(
        ContractImageError, match=re.escape("lacks shop/inventory/v1/inventory.proto")
    ):
        contract_fingerprint.service_contract(files, SERVICE)
    with pytest.raises(ContractImageError, match="not a serialized"):
        contract_fingerprint.files_of_image(b"\xff\xff")
