"""The heartbeat sender against a real HTTP server on 127.0.0.1 (issue #10.14)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from service.config import load_settings
from service.errors import ConfigError
from service.heartbeat import Heartbeat, build_heartbeat
from service.metrics import Metrics
from tests.servers import Receiver, Reply
from tests.test_metrics import key, samples

PING = "/ping/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """Our log lines (httpx logs URLs at INFO; the daemon raises it to WARNING)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("service"))


def heartbeat(
    url: str, health: list[tuple[bool, str]], metrics: Metrics, *, allow_private: bool = True
) -> Heartbeat:
    settings = load_settings(
        env_file=None,
        heartbeat_url=url,
        heartbeat_interval="1s",
        allow_private_targets=allow_private,
    )
    built = build_heartbeat(settings, lambda: health[-1], metrics)
    assert built is not None
    return built


@pytest.mark.anyio
async def test_beats_only_while_healthy_and_standby_counts_as_healthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    health = [(True, "starting")]
    with Receiver() as receiver:
        beat = heartbeat(receiver.url_for(PING), health, metrics)
        try:
            assert await beat.beat() is False  # starting: nothing proven yet
            health.append((True, "ok"))
            assert await beat.beat() is True
            health.append((False, "recording failed: disk full"))
            assert await beat.beat() is False
            assert await beat.beat() is False
            health.append((True, "standby"))
            assert await beat.beat() is True
        finally:
            await beat.aclose()
    assert [(r.method, r.path) for r in receiver.requests] == [("GET", PING)] * 2
    got = samples(metrics)
    assert got[key("earnwatch_heartbeats_total", outcome="sent")] == 2
    assert got[key("earnwatch_heartbeats_total", outcome="skipped")] == 3
    withheld = [r for r in caplog.records if "heartbeat withheld" in r.getMessage()]
    assert [r.getMessage() for r in withheld] == [
        "heartbeat withheld while unhealthy: recording failed: disk full"
    ]
    assert "5bf66975" not in ours(caplog)


@pytest.mark.anyio
async def test_a_failing_or_slow_monitor_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    with Receiver([503, 503, Reply(200, delay=5.0)]) as receiver:
        beat = heartbeat(receiver.url_for(PING), [(True, "ok")], metrics)
        beat.deadline = 0.5
        try:
            assert await beat.beat() is False
            assert await beat.beat() is False
            assert await beat.beat() is False  # cut at the deadline, not after 5 s
            assert await beat.beat() is True
        finally:
            await beat.aclose()
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    where = f"http://127.0.0.1:{receiver.port}/***"
    assert failures == [
        f"heartbeat to {where} failed: HTTP 503",
        f"heartbeat to {where} failed: no reply within 0.5 s",
    ]
    assert f"heartbeat to {where} acknowledged again" in caplog.text
    assert samples(metrics)[key("earnwatch_heartbeats_total", outcome="failed")] == 3
    assert "5bf66975" not in ours(caplog)


@pytest.mark.anyio
async def test_the_ssrf_guard_applies_to_the_heartbeat(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver() as receiver:
        beat = heartbeat(receiver.url_for(PING), [(True, "ok")], Metrics(), allow_private=False)
        try:
            assert await beat.beat() is False
        finally:
            await beat.aclose()
    assert receiver.requests == []
    assert "refused target '127.0.0.1'" in caplog.text and "5bf66975" not in caplog.text


def test_settings_a_bad_url_or_interval_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EARNWATCH_HEARTBEAT_URL", "ftp://hc-ping.com/secret-uuid")
    monkeypatch.setenv("EARNWATCH_HEARTBEAT_INTERVAL", "0s")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    text = str(info.value)
    assert "EARNWATCH_HEARTBEAT_URL" in text and "EARNWATCH_HEARTBEAT_INTERVAL" in text
    assert "secret-uuid" not in text


def test_settings_default_interval_and_the_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARNWATCH_HEARTBEAT_URL", "https://hc-ping.com/secret-uuid")
    settings = load_settings(env_file=None)
    assert settings.heartbeat_interval == timedelta(minutes=5)
    assert "https://hc-ping.com/secret-uuid" in settings.secrets()


@pytest.mark.parametrize("url", [None, ""])
def test_no_heartbeat_without_a_url(url: str | None) -> None:
    settings = load_settings(env_file=None, heartbeat_url=url)
    assert build_heartbeat(settings, lambda: (True, "ok"), Metrics()) is None
