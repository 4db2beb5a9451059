"""Choosing and waiting for loopback ports: what keeps parallel tests and `make up` apart."""

from __future__ import annotations

import socket

import pytest

from tools.runner.ports import free_ports, wait_until_bindable


def test_ports_chosen_by_one_call_are_not_chosen_again_while_reserved() -> None:
    first = set(free_ports(200))
    second = set(free_ports(200))
    assert len(first) == 200 and not first & second


def test_a_free_port_is_ready_at_once() -> None:
    (port,) = free_ports(1)
    wait_until_bindable(port, 0.0, "test")


def test_a_port_another_server_listens_on_is_refused_with_its_number() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} is taken by another listening"):
            wait_until_bindable(port, 5.0, "test")
