"""A real HTTP server on 127.0.0.1 that speaks Finnhub's API: /calendar/earnings,
/quote and /stock/price-target, with Finnhub's payload shapes (null actuals until
reported, an all-zero quote for an unknown symbol, 401 for a bad key, 403 for a plan
refusal). Tests change its data while a daemon polls it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

UNKNOWN_QUOTE = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}


class FakeFinnhub:
    def __init__(self, token: str = "test-finnhub-key") -> None:
        self.token = token
        self.lock = threading.Lock()
        self.calendar: list[dict[str, Any]] = []
        self.quotes: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.faults: list[tuple[int, str]] = []  # (status, body) served before real answers
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def start(self) -> FakeFinnhub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeFinnhub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- data the tests set ------------------------------------------------------------
    def set_event(self, **row: Any) -> None:
        """Add or replace the calendar row of (symbol, date)."""
        full = {
            "date": None,
            "epsActual": None,
            "epsEstimate": None,
            "hour": "",
            "quarter": None,
            "revenueActual": None,
            "revenueEstimate": None,
            "symbol": None,
            "year": None,
            **row,
        }
        with self.lock:
            self.calendar = [
                r
                for r in self.calendar
                if (r["symbol"], r["date"]) != (full["symbol"], full["date"])
            ] + [full]

    def set_quote(
        self, symbol: str, price: float, prev_close: float, t: int, open: float | None = None
    ) -> None:
        """The quote of `symbol`; its open (`o`) is `open`, else the previous close."""
        with self.lock:
            self.quotes[symbol] = {
                "c": price,
                "d": round(price - prev_close, 4),
                "dp": round((price - prev_close) / prev_close * 100, 4),
                "h": max(price, prev_close),
                "l": min(price, prev_close),
                "o": prev_close if open is None else open,
                "pc": prev_close,
                "t": t,
            }

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _q, _h in self.requests if p.endswith(path))

    # --- the server ----------------------------------------------------------------------
    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        with self.lock:
            if self.faults:
                status, body = self.faults.pop(0)
                return status, json.loads(body) if body.startswith("{") else body
            symbol = (query.get("symbol") or [""])[0].upper()
            if path.endswith("/calendar/earnings"):
                start, end = query["from"][0], query["to"][0]
                rows = [
                    r
                    for r in self.calendar
                    if start <= r["date"] <= end and (not symbol or r["symbol"] == symbol)
                ]
                return 200, {"earningsCalendar": list(reversed(rows))}  # Finnhub: unsorted
            if path.endswith("/quote"):
                return 200, self.quotes.get(symbol, UNKNOWN_QUOTE)
            if path.endswith("/stock/price-target"):
                if symbol not in self.targets:
                    return 403, {"error": "You don't have access to this resource."}
                return 200, self.targets[symbol]
        return 404, {"error": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake.lock:
                    fake.requests.append((parts.path, query, headers))
                token = headers.get("x-finnhub-token") or (query.get("token") or [""])[0]
                if not token:
                    status, body = 401, {"error": "Please use an API key."}
                elif token != fake.token:
                    status, body = 401, {"error": "Invalid API key."}
                else:
                    status, body = fake._answer(parts.path, query)
                raw = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
