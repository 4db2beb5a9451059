"""Retention as configured: every stream bounded with its declared discard policy, an inbox kept
at least as long as any copy of a message can come back, and configurations that would let a
duplicate through refused at start, naming the settings to change."""

from __future__ import annotations

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy

from runtime.settings import RetentionSettings, required_inbox_retention_s
from runtime.streams import DAY_S, DEAD_LETTER_STREAM, DUPLICATE_WINDOW_S, MIB, stream_configs


@pytest.fixture(autouse=True)
def no_retention_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CONCORD_EVENT_STREAM_MAX_AGE_DAYS",
        "CONCORD_DEAD_LETTER_RETENTION_DAYS",
        "CONCORD_INBOX_RETENTION_DAYS",
        "CONCORD_OUTBOX_RETENTION_S",
    ):
        monkeypatch.delenv(name, raising=False)


def test_event_streams_keep_by_age_and_size_and_discard_the_oldest() -> None:
    limits = RetentionSettings.from_env().streams
    events = [c for c in stream_configs(1, limits) if str(c.name).endswith("_EVENTS")]

    assert len(events) == 3
    for config in events:
        assert config.retention == RetentionPolicy.LIMITS
        assert config.max_age == 7 * DAY_S
        assert config.max_bytes == 512 * MIB
        assert config.discard == DiscardPolicy.OLD


def test_command_queues_are_capped_by_size_refusing_new_and_never_expire() -> None:
    commands = [c for c in stream_configs() if str(c.name).endswith("_COMMANDS")]

    assert len(commands) == 2
    for config in commands:
        assert config.retention == RetentionPolicy.WORK_QUEUE
        assert not config.max_age  # an unconsumed command never vanishes
        assert config.max_bytes == 64 * MIB
        assert config.discard == DiscardPolicy.NEW


def test_dead_letters_are_kept_the_configured_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_DEAD_LETTER_RETENTION_DAYS", "3")
    limits = RetentionSettings.from_env().streams
    (dead_letters,) = [c for c in stream_configs(1, limits) if c.name == DEAD_LETTER_STREAM]

    assert dead_letters.max_age == 3 * DAY_S
    assert dead_letters.max_bytes == 128 * MIB
    assert dead_letters.discard == DiscardPolicy.NEW


def test_every_stream_limit_fits_the_file_store_nats_runs_with() -> None:
    assert sum(int(c.max_bytes or 0) for c in stream_configs()) <= 2 * 1000**3


def test_inbox_retention_outlasts_stream_replay_and_duplicate_window() -> None:
    settings = RetentionSettings.from_env()
    streams = settings.streams

    assert settings.inbox_retention_s == required_inbox_retention_s(streams)
    assert settings.inbox_retention_s > streams.event_max_age_s + streams.dead_letter_max_age_s
    assert settings.inbox_retention_s > DUPLICATE_WINDOW_S
    assert settings.inbox_retention_s == 22 * DAY_S  # 7 + 14 + a day's margin


def test_inbox_retention_follows_longer_stream_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_EVENT_STREAM_MAX_AGE_DAYS", "30")

    assert RetentionSettings.from_env().inbox_retention_s == 45 * DAY_S


def test_inbox_retention_below_stream_retention_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONCORD_INBOX_RETENTION_DAYS", "10")

    with pytest.raises(ValueError) as refused:
        RetentionSettings.from_env()
    for setting in (
        "CONCORD_INBOX_RETENTION_DAYS",
        "CONCORD_EVENT_STREAM_MAX_AGE_DAYS",
        "CONCORD_DEAD_LETTER_RETENTION_DAYS",
    ):
        assert setting in str(refused.value)


def test_a_longer_inbox_retention_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCORD_INBOX_RETENTION_DAYS", "60")

    assert RetentionSettings.from_env().inbox_retention_s == 60 * DAY_S


def test_stream_ages_within_the_duplicate_window_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONCORD_EVENT_STREAM_MAX_AGE_DAYS", "0.001")

    with pytest.raises(ValueError, match="CONCORD_EVENT_STREAM_MAX_AGE_DAYS"):
        RetentionSettings.from_env()


def test_the_duplicate_window_is_a_setting_every_catalogue_stream_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONCORD_STREAM_DUPLICATE_WINDOW_S", "60")
    limits = RetentionSettings.from_env().streams

    configs = [c for c in stream_configs(limits=limits) if c.name != DEAD_LETTER_STREAM]
    assert configs and {c.duplicate_window for c in configs} == {60.0}


@pytest.mark.parametrize("window_s", ["0", "-5", str(8 * DAY_S)])
def test_a_duplicate_window_that_is_not_positive_or_outlasts_the_streams_is_refused(
    monkeypatch: pytest.MonkeyPatch, window_s: str
) -> None:
    monkeypatch.setenv("CONCORD_STREAM_DUPLICATE_WINDOW_S", window_s)

    with pytest.raises(ValueError, match="CONCORD_STREAM_DUPLICATE_WINDOW_S"):
        RetentionSettings.from_env()
