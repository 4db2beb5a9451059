"""Reading a process's real /metrics endpoint, as Prometheus would."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import eventually

SCRAPE_TIMEOUT_S = 5.0
WAIT_S = 15.0


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as reply:
        return str(reply.read().decode())


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at `url`: (sample name, labels) -> value."""
    text = await asyncio.to_thread(_fetch, url)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def sample(url: str, name: str, **labels: str) -> float | None:
    """One sample's value; None when the process does not (yet) report it."""
    return (await scrape(url)).get((name, frozenset(labels.items())))


async def wait_for_sample(url: str, name: str, value: float, **labels: str) -> None:
    """Until the sample has `value`; fails with the last value seen."""
    await eventually(
        lambda: sample(url, name, **labels),
        lambda seen: seen == value,
        WAIT_S,
        f"{name}{labels} == {value}",
    )
