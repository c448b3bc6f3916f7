"""FakeFinnhub whose `/quote` drips for chosen symbols: HTTP 200 headers at once, then one
byte of the body every `interval` seconds, as a stalled or hostile upstream would. Every
other request is answered at once, the FakeFinnhub way. A drip ends after `drip_for`
seconds (so a client without a total deadline is stuck that long, not forever)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.finnhub import FakeFinnhub


class DripFinnhub(FakeFinnhub):
    def __init__(
        self, *, interval: float = 2.0, drip_for: float = 120.0, token: str = "test-finnhub-key"
    ) -> None:
        self.drip: set[str] = set()
        self.interval = interval
        self.drip_for = drip_for
        self.dripping = 0  # requests being dripped right now
        self._stopped = threading.Event()
        super().__init__(token)

    def stop(self) -> None:
        self._stopped.set()
        super().stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        base = super()._handler()

        class Handler(base):  # type: ignore[valid-type, misc]
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                symbol = (parse_qs(parts.query).get("symbol") or [""])[0].upper()
                if not (parts.path.endswith("/quote") and symbol in fake.drip):
                    super().do_GET()
                    return
                with fake.lock:
                    fake.requests.append((parts.path, parse_qs(parts.query), {}))
                    fake.dripping += 1
                try:
                    self._drip(symbol)
                finally:
                    with fake.lock:
                        fake.dripping -= 1

            def _drip(self, symbol: str) -> None:
                quote: Any = fake.quotes.get(symbol, {"c": 1.0, "pc": 1.0, "t": int(time.time())})
                raw = json.dumps(quote).encode().ljust(4096)
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.flush()
                ends = time.monotonic() + fake.drip_for
                for byte in raw:
                    if time.monotonic() > ends or fake._stopped.wait(fake.interval):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up: what a deadline does
                        return

        return Handler
