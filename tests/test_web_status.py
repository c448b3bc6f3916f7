"""The status page, `/api/status` and their access over real HTTP on 127.0.0.1: the token
(bearer or the `/login` cookie), `/healthz` open, `/metrics` behind the same token, the
refusal of a non-loopback address without a token (also by a real `earnwatch run`), and
autoescaping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import load_settings
from service.metrics import Metrics
from service.web import WebServer, is_loopback, refusal, start_web
from service.webapp import COOKIE, session_value
from tests.daemon_setup import MISSED, RULES, fake_finnhub, write_env
from tests.e2e import Daemon
from tests.servers import Receiver
from tests.test_status import snapshot

TOKEN = "s3cret-page-token-42"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Status:
    """A status source the test can change: the snapshot of tests/test_status.py."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = snapshot()
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return self.data


def healthy() -> tuple[bool, str]:
    return True, "ok"


@pytest.fixture
def status() -> Status:
    return Status()


async def serving(status: Status, token: str | None) -> WebServer:
    return await start_web("127.0.0.1", 0, healthy, Metrics(), status=status, token=token)


@pytest.fixture
async def open_page(status: Status) -> AsyncIterator[httpx.AsyncClient]:
    web = await serving(status, None)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{web.port}", trust_env=False, timeout=5
        ) as http:
            yield http
    finally:
        await web.aclose()


@pytest.fixture
async def guarded(status: Status) -> AsyncIterator[httpx.AsyncClient]:
    web = await serving(status, TOKEN)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{web.port}", trust_env=False, timeout=5
        ) as http:
            yield http
    finally:
        await web.aclose()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


# --- the page and the JSON ---------------------------------------------------------------


@pytest.mark.anyio
async def test_the_page_shows_rules_states_reports_alerts_and_the_replica(
    open_page: httpx.AsyncClient,
) -> None:
    response = await open_page.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["connection"] == "close"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<meta http-equiv="refresh" content="15">' in page
    for name in ("over-ten", "held-under-nine", "lumn-miss"):
        assert f'<h3 class="rule-name">{name}</h3>' in page
    assert 'data-symbol="ACME" data-state="cooldown"' in page
    assert "cooldown until 2026-02-04 17:25Z" in page
    assert "pending: 6m of `for` left" in page
    assert "2026Q1" in page and "2026-02-10" in page  # ACME's next report
    assert "-42.9%" in page  # LUMN's last report, its EPS surprise
    assert "HTTP 500 from https://example.com/***" in page  # the last alert's delivery
    assert "until 2026-02-04 18:30Z: quiet hours" in page
    # No external asset: nothing is loaded from anywhere.
    assert "<script" not in page and "src=" not in page and "<link" not in page


@pytest.mark.anyio
async def test_api_status_is_the_same_data_as_json(
    open_page: httpx.AsyncClient, status: Status
) -> None:
    response = await open_page.get("/api/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["rules"][0]["name"] == "over-ten"
    assert body == status.data


@pytest.mark.anyio
async def test_head_and_other_methods_on_the_page(open_page: httpx.AsyncClient) -> None:
    head = await open_page.head("/")
    assert head.status_code == 200 and head.content == b""
    post = await open_page.post("/", content=b"x")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert (await open_page.get("/api/other")).status_code == 404


@pytest.mark.anyio
async def test_a_status_source_that_fails_is_a_500_and_the_server_goes_on(
    open_page: httpx.AsyncClient, status: Status
) -> None:
    status.data = None  # type: ignore[assignment]  # the template cannot render it
    assert (await open_page.get("/")).status_code == 500
    status.data = snapshot()
    assert (await open_page.get("/")).status_code == 200


@pytest.mark.anyio
async def test_a_rule_name_with_markup_is_escaped(
    open_page: httpx.AsyncClient, status: Status
) -> None:
    status.data["rules"][0]["name"] = "<script>alert(1)</script>"
    status.data["alerts"][0]["message"] = '<img src=x onerror="alert(2)">'
    page = (await open_page.get("/")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page
    assert "price &gt; 10" in page  # a condition's `>` too


# --- access --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_with_a_token_the_page_is_401_without_it_and_200_with_it(
    guarded: httpx.AsyncClient, status: Status
) -> None:
    denied = await guarded.get("/")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert 'action="/login"' in denied.text and "over-ten" not in denied.text
    assert status.calls == 0  # nothing was read for a stranger
    wrong = await guarded.get("/", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert (await guarded.get("/api/status")).status_code == 401
    page = await guarded.get("/", headers=BEARER)
    assert page.status_code == 200 and "over-ten" in page.text
    assert (await guarded.get("/api/status", headers=BEARER)).json()["rules"]


class History:
    """A history source that records its calls (and fails when told to)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None, str | None]] = []
        self.fail = False

    async def __call__(
        self, limit: int, rule: str | None, status: str | None
    ) -> list[dict[str, Any]]:
        self.calls.append((limit, rule, status))
        if self.fail:
            raise RuntimeError("the store is gone")
        return [{"alert_id": f"a{n}", "rule": rule or "r"} for n in range(min(limit, 3))]


@pytest.mark.anyio
async def test_api_history_behind_the_token_passes_its_parameters_and_refuses_bad_ones(
    status: Status,
) -> None:
    history = History()
    web = await start_web(
        "127.0.0.1", 0, healthy, Metrics(), status=status, history=history, token=TOKEN
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{web.port}", trust_env=False, timeout=5
        ) as http:
            assert (await http.get("/api/history")).status_code == 401
            assert history.calls == []  # nothing was read for a stranger
            got = await http.get("/api/history", headers=BEARER)
            assert got.status_code == 200 and got.headers["content-type"] == "application/json"
            assert [a["alert_id"] for a in got.json()] == ["a0", "a1", "a2"]
            query = {"limit": "2", "rule": "lumn-miss", "status": "dead"}
            got = await http.get("/api/history", params=query, headers=BEARER)
            assert got.json() == [
                {"alert_id": "a0", "rule": "lumn-miss"},
                {"alert_id": "a1", "rule": "lumn-miss"},
            ]
            assert history.calls == [(50, None, None), (2, "lumn-miss", "dead")]
            for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": "-1"}):
                refused = await http.get("/api/history", params=bad, headers=BEARER)
                assert refused.status_code == 400
                assert refused.text == "limit: a whole number from 1 to 1000\n"
            refused = await http.get("/api/history", params={"status": "lost"}, headers=BEARER)
            assert refused.status_code == 400 and refused.text.startswith("status: one of pending")
            assert len(history.calls) == 2  # a refused request reads nothing
            history.fail = True
            failed = await http.get("/api/history", headers=BEARER)
            assert failed.status_code == 500 and failed.text == "history unavailable\n"
            assert (await http.get("/healthz")).status_code == 200  # and it goes on
    finally:
        await web.aclose()


@pytest.mark.anyio
async def test_without_a_history_source_there_is_no_api_history(
    open_page: httpx.AsyncClient,
) -> None:
    assert (await open_page.get("/api/history")).status_code == 404


@pytest.mark.anyio
async def test_login_sets_an_httponly_strict_cookie_that_opens_the_page(
    guarded: httpx.AsyncClient,
) -> None:
    wrong = await guarded.get("/login", params={"token": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    login = await guarded.get("/login", params={"token": TOKEN})
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={session_value(TOKEN)};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token
    page = await guarded.get("/")  # httpx keeps the cookie
    assert page.status_code == 200 and "over-ten" in page.text
    guarded.cookies.clear()
    guarded.cookies.set(COOKIE, "forged")
    assert (await guarded.get("/")).status_code == 401


@pytest.mark.anyio
async def test_healthz_stays_open_and_metrics_want_the_bearer_token(
    guarded: httpx.AsyncClient,
) -> None:
    assert (await guarded.get("/healthz")).text == "ok\n"
    denied = await guarded.get("/metrics")
    assert denied.status_code == 401 and denied.text == "unauthorized\n"
    allowed = await guarded.get("/metrics", headers=BEARER)
    assert allowed.status_code == 200 and "earnwatch_polls_total" in allowed.text


@pytest.mark.anyio
async def test_without_a_token_metrics_stay_open(open_page: httpx.AsyncClient) -> None:
    assert (await open_page.get("/metrics")).status_code == 200


@pytest.mark.anyio
async def test_the_token_is_never_logged(
    guarded: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await guarded.get("/login", params={"token": TOKEN})
    await guarded.get("/login", params={"token": TOKEN + "x"})
    await guarded.get("/", headers=BEARER)
    server_side = [r for r in caplog.records if r.name.startswith(("service", "uvicorn"))]
    assert server_side == [] or all(TOKEN not in r.getMessage() for r in server_side)
    assert not any(r.name.startswith("uvicorn.access") for r in caplog.records)


def test_only_loopback_addresses_are_open_without_a_token() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        assert is_loopback(host) and refusal(host, None) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "earnwatch.example.com", ""):
        line = refusal(host, None)
        assert line is not None and "EARNWATCH_HTTP " in line, host
        assert "EARNWATCH_HTTP_TOKEN" in line
        assert refusal(host, TOKEN) is None


def test_the_token_setting_is_a_secret() -> None:
    settings = load_settings(None, http_token=TOKEN)
    assert TOKEN in settings.secrets()
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    assert load_settings(None, http_token="").http_token is None


@pytest.mark.slow
def test_a_daemon_on_a_non_loopback_address_without_a_token_refuses_to_start(
    tmp_path: Path,
) -> None:
    finnhub = fake_finnhub()
    try:
        with Receiver() as receiver:
            write_env(tmp_path, finnhub, receiver, "EARNWATCH_HTTP=0.0.0.0:0")
            (tmp_path / "rules.yaml").write_text(RULES)
            daemon = Daemon(tmp_path, "--rules", "rules.yaml").start()
            assert daemon.process is not None
            try:
                assert daemon.process.wait(30) == 2
            finally:
                daemon.stop()
    finally:
        finnhub.stop()
    errors = [line for line in daemon.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, daemon.log()
    assert "cannot start: EARNWATCH_HTTP listens on 0.0.0.0" in errors[0]
    assert "set EARNWATCH_HTTP_TOKEN" in errors[0]
    assert "Traceback" not in daemon.log()


@pytest.mark.slow
def test_a_daemon_on_0_0_0_0_with_a_token_serves_the_page_only_with_it(tmp_path: Path) -> None:
    import re

    from tests.e2e import wait_for

    finnhub = fake_finnhub()
    finnhub.set_event(**MISSED)  # reported: the miss fires, for /api/history to list
    try:
        with Receiver() as receiver:
            write_env(
                tmp_path,
                finnhub,
                receiver,
                "EARNWATCH_HTTP=0.0.0.0:0",
                f"EARNWATCH_HTTP_TOKEN={TOKEN}",
            )
            (tmp_path / "rules.yaml").write_text(RULES)
            with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
                wait_for(lambda: "health and metrics on" in daemon.log(), 20, "the server", daemon)
                found = re.search(r"health and metrics on http://0\.0\.0\.0:(\d+)", daemon.log())
                assert found, daemon.log()
                base = f"http://127.0.0.1:{found.group(1)}"
                with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
                    assert http.get("/").status_code == 401
                    assert http.get("/healthz").status_code in (200, 503)
                    page = http.get("/", headers=BEARER)
                    assert page.status_code == 200 and "lumn-miss" in page.text
                    # the daemon's own history: the miss it sent, as `history --json` has it
                    wait_for(lambda: receiver.requests, 20, "the miss alert", daemon)
                    assert http.get("/api/history").status_code == 401
                    listed = http.get("/api/history", params={"rule": "lumn-miss"}, headers=BEARER)
                    assert listed.status_code == 200, listed.text
                    [alert] = listed.json()
                    assert alert["rule"] == "lumn-miss" and alert["symbol"] == "LUMN"
                    assert [d["channel"] for d in alert["deliveries"]] == ["hook"]
    finally:
        finnhub.stop()
    assert TOKEN not in daemon.log()
    assert "(token required)" in daemon.log()


def test_the_cli_and_the_app_load_no_web_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, service.cli, service.app, service.web, service.daemon; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
