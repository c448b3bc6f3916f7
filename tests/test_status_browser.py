"""The status page in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) loads the page of a real `earnwatch run` against the
fake Finnhub, the DOM shows the rule names, a symbol's state, an upcoming report and the
last alert, and a screenshot (PNG, desktop and phone widths) is saved under the test's
temporary folder, its path printed and logged.

Skipped only when Chromium is absent and EARNWATCH_REQUIRE_BROWSER is not set (CI sets it
and installs the packages, so there it fails instead)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.alerting_e2e import base_url
from tests.daemon_setup import ROW
from tests.e2e import Daemon, fast_env, wait_for
from tests.fakes.finnhub import FakeFinnhub
from tests.servers import Receiver, Reply

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Without these a headless Chromium on a closed network waits on connections it tries.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
NEW_YORK = ZoneInfo("America/New_York")
YESTERDAY = (datetime.now(NEW_YORK) - timedelta(days=1)).date().isoformat()

RULES = """\
channels:
  hook: {type: webhook, url: "${HOOK_URL}"}
  pager: {type: webhook, url: "${PAGER_URL}"}
rules:
  - name: lumn-above-eight
    symbols: [LUMN]
    when: price > 8
    cooldown: 1h
    notify: [hook, pager]
  - name: acme-beat
    symbols: [ACME]
    when: reported and eps_actual > eps_estimate
    notify: [hook]
  - name: lumn-held-up
    symbols: [LUMN]
    when: price > 1
    for: 2h
    notify: [hook]
  - name: zzzz-watch
    symbols: [ZZZZ]
    when: price > 5
    notify: [hook]
"""


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("EARNWATCH_REQUIRE_BROWSER"):
            pytest.fail(f"EARNWATCH_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, path: Path, width: int) -> Path:
    """The whole page at `width` CSS pixels (the window made as tall as the page)."""
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 120, 6000))
    assert driver.save_screenshot(str(path))
    message = f"status page screenshot ({width} px wide): {path}"
    print(message)  # noqa: T201  # `pytest -s` shows where it is
    log.info("%s", message)
    return path


def test_the_status_page_of_a_running_daemon_in_headless_chromium(
    tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    finnhub = FakeFinnhub().start()
    now = int(time.time())
    finnhub.set_event(**ROW)  # LUMN reports today after the close: the upcoming report
    finnhub.set_event(
        symbol="ACME",
        date=YESTERDAY,
        hour="bmo",
        year=2026,
        quarter=1,
        epsEstimate=1.10,
        epsActual=1.32,
        revenueEstimate=2.4e9,
        revenueActual=2.5e9,
    )
    finnhub.set_quote("LUMN", 8.46, 8.93, now)
    finnhub.set_quote("ACME", 41.2, 39.0, now)
    try:
        with (
            Receiver() as hook,
            Receiver(default=Reply(503, b"pager down")) as pager,
        ):
            lines = [
                *fast_env(tmp_path, finnhub.base_url),
                f"HOOK_URL={hook.url_for('/hooks/earnings')}",
                f"PAGER_URL={pager.url_for('/pager')}",
                "EARNWATCH_DELIVERY_MAX_ATTEMPTS=2",
            ]
            (tmp_path / ".env").write_text("\n".join(lines) + "\n")
            (tmp_path / "rules.yaml").write_text(RULES)
            with Daemon(tmp_path, "--rules", "rules.yaml") as daemon:
                base = base_url(daemon)
                wait_for(lambda: len(hook.requests) >= 2, 30, "both alerts delivered", daemon)
                wait_for(lambda: len(pager.requests) >= 1, 30, "the pager tried", daemon)
                browser.get(base + "/")
                assert browser.title == "Earnwatch status"

                names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".rule-name")]
                assert names == ["lumn-above-eight", "acme-beat", "lumn-held-up", "zzzz-watch"]

                def state(rule: str, symbol: str) -> str:
                    row = browser.find_element(
                        By.CSS_SELECTOR,
                        f'.rule[data-rule="{rule}"] tr.symbol-state[data-symbol="{symbol}"]',
                    )
                    return str(row.get_attribute("data-state"))

                assert state("lumn-above-eight", "LUMN") == "cooldown"
                assert state("lumn-held-up", "LUMN") == "pending"
                assert state("zzzz-watch", "ZZZZ") == "unknown"
                assert state("acme-beat", "ACME") == "fired"
                pending = browser.find_element(
                    By.CSS_SELECTOR, '.rule[data-rule="lumn-held-up"] .headline'
                ).text
                assert pending.startswith("pending: ") and "of `for` left" in pending

                upcoming = browser.find_elements(By.CSS_SELECTOR, "#next-reports tr.report")
                assert [r.get_attribute("data-symbol") for r in upcoming] == ["LUMN"]
                assert "2025Q4" in upcoming[0].text and "amc" in upcoming[0].text
                last = browser.find_element(By.CSS_SELECTOR, "#last-reports tr.report")
                assert "ACME" in last.text and "+20.0%" in last.text  # 1.32 vs 1.10

                alerts = browser.find_elements(By.CSS_SELECTOR, "#alerts tr.alert")
                fired = {
                    (a.get_attribute("data-rule"), a.get_attribute("data-symbol")) for a in alerts
                }
                assert fired == {("lumn-above-eight", "LUMN"), ("acme-beat", "ACME")}
                alerts_text = browser.find_element(By.ID, "alerts").text
                assert "delivered" in alerts_text and "pager" in alerts_text
                assert "503" in alerts_text  # the pager's last error
                assert browser.find_element(By.ID, "leader").text == "leader"

                desktop = screenshot(browser, tmp_path / "status-page.png", 1280)
                phone = screenshot(browser, tmp_path / "status-page-phone.png", 390)
                overflow = browser.execute_script(
                    "return document.documentElement.scrollWidth > window.innerWidth + 1"
                )
                assert overflow is False  # wide tables scroll inside their box on a phone
    finally:
        finnhub.stop()
    for png in (desktop, phone):
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
