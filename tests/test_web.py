"""/healthz and /metrics over real HTTP on 127.0.0.1, and HealthState with explicit `now`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.health import HealthState
from service.metrics import Metrics
from service.web import WebServer, start_web

T0 = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Health:
    """A health callable the test flips."""

    def __init__(self) -> None:
        self.state: tuple[bool, str] = (True, "ok")
        self.error: Exception | None = None

    def __call__(self) -> tuple[bool, str]:
        if self.error is not None:
            raise self.error
        return self.state


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def server(health: Health, metrics: Metrics) -> AsyncIterator[WebServer]:
    web = await start_web("127.0.0.1", 0, health, metrics)
    try:
        yield web
    finally:
        await web.aclose()


@pytest.fixture
async def client(server: WebServer) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as http:
        yield http


async def raw(server: WebServer, data: bytes) -> bytes:
    """Send `data`, say we are done sending, and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    writer.write_eof()
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return response


# --- HTTP --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_healthz_says_ok_while_healthy(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["connection"] == "close"


@pytest.mark.anyio
async def test_healthz_is_503_with_the_reason_while_unhealthy(
    client: httpx.AsyncClient, health: Health
) -> None:
    health.state = (False, "scheduler not running")
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "scheduler not running\n"


@pytest.mark.anyio
async def test_a_health_check_that_raises_is_a_503_not_a_crash(
    client: httpx.AsyncClient, health: Health
) -> None:
    health.error = RuntimeError("bug")
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "health check failed\n"
    health.error = None
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.anyio
async def test_metrics_are_served_in_prometheus_text_and_show_increments(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    before = await client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=")
    assert 'earnwatch_polls_total{kind="quotes"} 0.0' in before.text
    metrics.poll("quotes")
    metrics.poll("quotes")
    after = await client.get("/metrics")
    assert 'earnwatch_polls_total{kind="quotes"} 2.0' in after.text
    assert "# TYPE earnwatch_evaluation_seconds histogram" in after.text


@pytest.mark.anyio
async def test_query_strings_are_ignored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz?verbose=1")).status_code == 200


@pytest.mark.anyio
async def test_unknown_paths_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/", "/status", "/metrics/", "/healthz/x"):
        response = await client.get(path)
        assert response.status_code == 404, path


@pytest.mark.anyio
async def test_head_gives_the_headers_without_a_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/metrics")
    head = await client.head("/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


@pytest.mark.anyio
async def test_other_methods_on_known_paths_are_405(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "request_bytes",
    [
        b"garbage\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz SPDY/3\r\n\r\n",
        b"\xff\xfe /healthz HTTP/1.1\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # closed before the blank line
    ],
    ids=["no-parts", "no-version", "no-slash", "not-http", "not-ascii", "too-long", "cut"],
)
async def test_malformed_requests_get_400(server: WebServer, request_bytes: bytes) -> None:
    response = await raw(server, request_bytes)
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")


@pytest.mark.anyio
async def test_http_1_0_requests_are_answered_and_the_connection_closed(
    server: WebServer,
) -> None:
    response = await raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"\r\n\r\nok\n")


@pytest.mark.anyio
async def test_a_client_that_sends_nothing_is_dropped_after_the_read_timeout(
    server: WebServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.web.READ_TIMEOUT", 0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.anyio
async def test_a_client_that_connects_and_leaves_does_not_hurt_the_server(
    server: WebServer, client: httpx.AsyncClient
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    await writer.wait_closed()
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.anyio
async def test_closing_drops_a_silent_client_and_stops_listening(
    health: Health, metrics: Metrics
) -> None:
    web = await start_web("127.0.0.1", 0, health, metrics)
    port = web.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(web.aclose(), 2)
    await web.aclose()  # a second close is harmless
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.anyio
async def test_a_taken_port_raises_at_start(server: WebServer, health: Health) -> None:
    with pytest.raises(OSError):
        await start_web("127.0.0.1", server.port, health, Metrics())


# --- HealthState -------------------------------------------------------------------------


def running(stale_after: float = 180, **kwargs: object) -> HealthState:
    state = HealthState(timedelta(seconds=stale_after), started_at=T0, **kwargs)  # type: ignore[arg-type]
    state.scheduler_running = True
    return state


def test_health_is_unhealthy_until_the_scheduler_runs() -> None:
    state = HealthState(timedelta(seconds=180), started_at=T0)
    assert state.check(T0) == (False, "scheduler not running")
    state.scheduler_running = True
    assert state.check(T0) == (True, "starting")


def test_health_gives_a_start_grace_then_wants_a_provider_call() -> None:
    state = running(180, start_grace=timedelta(seconds=60))
    assert state.check(T0 + timedelta(seconds=59)) == (True, "starting")
    assert state.check(T0 + timedelta(seconds=60)) == (False, "starting: no provider call yet")


def test_health_after_the_grace_with_only_failures_names_the_last_error() -> None:
    state = running(180, start_grace=timedelta(seconds=60), max_failures=0)
    state.mark_provider_failure(T0 + timedelta(seconds=10), "finnhub: HTTP 503")
    assert state.check(T0 + timedelta(seconds=61)) == (
        False,
        "no successful provider call in the last 180 s: finnhub: HTTP 503",
    )


def test_health_is_ok_while_provider_calls_succeed() -> None:
    state = running(180)
    state.mark_provider_success(T0)
    assert state.check(T0 + timedelta(seconds=180)) == (True, "ok")


def test_health_turns_503_when_the_last_success_is_too_old() -> None:
    state = running(180, max_failures=0)
    state.mark_provider_success(T0)
    state.mark_provider_failure(T0 + timedelta(seconds=60), "finnhub: rate limited\n(429)")
    assert state.check(T0 + timedelta(seconds=181)) == (
        False,
        "no successful provider call in the last 180 s: finnhub: rate limited (429)",
    )


def test_health_turns_503_when_nothing_was_called_for_too_long() -> None:
    state = running(180)
    state.mark_provider_success(T0)
    healthy, reason = state.check(T0 + timedelta(minutes=10))
    assert not healthy
    assert reason == "no successful provider call in the last 180 s: no provider call since"


def test_health_turns_503_after_three_failures_in_a_row_and_back_after_one_success() -> None:
    state = running(180)
    state.mark_provider_success(T0)
    for i in range(1, 3):
        state.mark_provider_failure(T0 + timedelta(seconds=i), "fmp: timeout")
        assert state.check(T0 + timedelta(seconds=i))[0]
    state.mark_provider_failure(T0 + timedelta(seconds=3), "fmp: timeout")
    assert state.check(T0 + timedelta(seconds=3)) == (
        False,
        "3 provider calls failed in a row: fmp: timeout",
    )
    state.mark_provider_success(T0 + timedelta(seconds=4))
    assert state.check(T0 + timedelta(seconds=4)) == (True, "ok")


def test_a_standby_replica_is_healthy_without_provider_calls() -> None:
    state = running(180, start_grace=timedelta(seconds=60))
    state.set_leading(False, T0)
    assert state.check(T0 + timedelta(hours=1)) == (True, "standby")
    state.scheduler_running = False
    assert state.check(T0 + timedelta(hours=1)) == (False, "scheduler not running")


def test_a_new_leader_gets_a_fresh_start_grace() -> None:
    state = running(180, start_grace=timedelta(seconds=60))
    state.set_leading(False, T0)
    took_over = T0 + timedelta(hours=1)
    state.set_leading(True, took_over)
    assert state.check(took_over + timedelta(seconds=59)) == (True, "starting")
    assert state.check(took_over + timedelta(seconds=60)) == (
        False,
        "starting: no provider call yet",
    )


def test_health_grace_starts_at_the_first_check_when_no_start_is_given() -> None:
    state = HealthState(timedelta(seconds=30))
    state.scheduler_running = True
    assert state.check(T0) == (True, "starting")
    assert state.check(T0 + timedelta(seconds=31)) == (False, "starting: no provider call yet")


@pytest.mark.anyio
async def test_health_state_drives_the_healthz_answer(metrics: Metrics) -> None:
    state = HealthState(timedelta(seconds=180), started_at=T0)
    now = [T0]

    def check() -> tuple[bool, str]:
        return state.check(now[0])

    web = await start_web("127.0.0.1", 0, check, metrics)
    base = f"http://127.0.0.1:{web.port}"
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as http:
            first = await http.get("/healthz")
            state.scheduler_running = True
            state.mark_provider_success(T0)
            second = await http.get("/healthz")
            now[0] = T0 + timedelta(minutes=5)
            third = await http.get("/healthz")
    finally:
        await web.aclose()
    assert (first.status_code, first.text) == (503, "scheduler not running\n")
    assert (second.status_code, second.text) == (200, "ok\n")
    assert third.status_code == 503
    assert third.text.startswith("no successful provider call in the last 180 s")
