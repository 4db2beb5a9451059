"""`devstack logs` and a failed `make up`, as a person reads them: ids first, processes merged by
time, and a failed start that names its log and shows the log's last lines, not a traceback."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from pathlib import Path

import pytest

from tools.devstack import cli, logs
from tools.runner.process import ManagedProcess, ProcessFailedError


def write_logs(log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    orders = [
        {
            "ts": "2026-01-02T10:00:00.100Z",
            "level": "info",
            "service": "orders",
            "event": "order_placed",
            "order_id": "ord_1",
            "trace_id": "4bf92f",
            "total_minor": 2500,
        },
        {
            "ts": "2026-01-02T10:00:00.300Z",
            "level": "info",
            "service": "orders",
            "event": "order_confirmed",
            "order_id": "ord_1",
        },
        {
            "ts": "2026-01-02T10:00:00.400Z",
            "level": "info",
            "service": "orders",
            "event": "order_placed",
            "order_id": "ord_2",
        },
    ]
    inventory = [
        {
            "ts": "2026-01-02T10:00:00.200Z",
            "level": "info",
            "service": "inventory",
            "event": "stock_reserved",
            "order_id": "ord_1",
            "lines": 1,
        },
    ]
    (log_dir / "orders.log").write_text("".join(json.dumps(e) + "\n" for e in orders))
    (log_dir / "inventory.log").write_text("".join(json.dumps(e) + "\n" for e in inventory))
    (log_dir / "nats.log").write_text("[7] 2026/01/02 10:00:00.250000 [INF] Server is ready\n")


def args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {"process": None, "follow": False, "lines": 50, "order": None}
    return argparse.Namespace(**{**values, **overrides})


def test_logs_of_every_process_merge_by_time_with_the_ids_first(tmp_path: Path) -> None:
    write_logs(tmp_path)
    out = io.StringIO()

    assert logs.show(args(), tmp_path, out) == 0

    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [
        "orders",
        "inventory",
        "nats",
        "orders",
        "orders",
    ]
    assert lines[0] == (
        "10:00:00.100 orders    INFO    order_placed  order=ord_1 trace=4bf92f  total_minor=2500"
    )
    assert lines[2].endswith("[INF] Server is ready")


def test_logs_for_one_order_or_one_process(tmp_path: Path) -> None:
    write_logs(tmp_path)
    by_order, by_process = io.StringIO(), io.StringIO()

    logs.show(args(order="ord_1"), tmp_path, by_order)
    logs.show(args(process="inventory"), tmp_path, by_process)

    events = [line.split()[3] for line in by_order.getvalue().splitlines()]
    assert events == ["order_placed", "stock_reserved", "order_confirmed"]
    assert "stock_reserved" in by_process.getvalue() and "orders" not in by_process.getvalue()


def test_logs_of_an_unknown_process_name_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_logs(tmp_path)

    assert logs.show(args(process="ordrs"), tmp_path) == 1
    err = capsys.readouterr().err
    assert "no log for 'ordrs'" in err and "(logs there: inventory, nats, orders)" in err


def test_following_prints_lines_as_they_are_written(tmp_path: Path) -> None:
    write_logs(tmp_path)
    out = io.StringIO()
    follower = threading.Thread(
        target=logs.follow, args=([tmp_path / "orders.log"], out, None), daemon=True
    )
    follower.start()
    time.sleep(logs.FOLLOW_POLL_S * 2)
    line = {
        "ts": "2026-01-02T10:00:01.000Z",
        "level": "warning",
        "event": "late",
        "order_id": "ord_3",
    }
    with (tmp_path / "orders.log").open("a") as f:
        f.write(json.dumps(line) + "\n")
    deadline = time.monotonic() + 10
    while "late" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert out.getvalue().splitlines() == ["10:00:01.000 orders    WARNING late  order=ord_3"]


def test_a_failed_start_prints_its_log_path_and_last_lines_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "registry.log"
    log.write_text("a line of the previous run\n")
    process = ManagedProcess(
        name="registry",
        argv=["sh", "-c", "echo 'opening database'; echo 'bind: address in use' >&2; exit 3"],
        log_path=log,
    ).start()
    with pytest.raises(ProcessFailedError) as failure:
        process.wait_until(lambda: False, timeout_s=10)

    assert cli.start_failed(failure.value) == 1

    err = capsys.readouterr().err
    assert f"registry exited early (log: {log})" in err
    assert err.index("opening database") < err.index("bind: address in use")
    assert "Traceback" not in err and "previous run" not in err
