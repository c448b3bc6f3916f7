"""A real HTTP server on 127.0.0.1 that speaks FMP's stable API: /earnings-calendar and
/batch-quote, shaped as data/providers.md shows, quirks included: the key only as the
`apikey` query parameter (401 with an `Error Message` body when wrong or missing), a global
calendar that ignores any symbol filter and holds foreign listings (`DSCT.TA`), unsorted
rows of 12 fields with `includeReportTimes=true` (7 without), `time` bmo/amc/null, pages of
at most PAGE_ROWS rows, and a row re-dated a day forward while still selected by its
original date. Tests change its data while a daemon polls it."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_ROWS = 4000
BAD_KEY = {
    "Error Message": "Invalid API KEY. Please retry or visit our documentation to create one "
    "FREE https://site.financialmodelingprep.com/developer/docs"
}
#: A foreign listing on the same days: the calendar is global.
FOREIGN = {
    "symbol": "DSCT.TA",
    "epsActual": 0.65,
    "epsEstimated": 0.606,
    "revenueActual": 2898780000,
    "revenueEstimated": 5889000000,
    "time": "bmo",
    "periodEnding": "2026-03-31",
    "fiscalPeriod": "Q1",
    "fiscalYear": 2026,
    "confirmed": True,
    "lastUpdated": "2026-08-17",
}
_WITHOUT_TIMES = ("time", "periodEnding", "fiscalPeriod", "fiscalYear", "confirmed")


class FakeFmp:
    def __init__(self, apikey: str = "test-fmp-key") -> None:
        self.apikey = apikey
        self.lock = threading.Lock()
        #: (the date a row is selected by, the row as sent; its `date` may be a day later)
        self.calendar: list[tuple[str, dict[str, Any]]] = []
        self.quotes: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/stable"

    def start(self) -> FakeFmp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeFmp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- data the tests set ------------------------------------------------------------
    def set_event(self, *, redated: bool = False, **row: Any) -> None:
        """Add or replace the row of (symbol, date); `redated`: sent dated a day later
        (FMP's quirk), still selected by `date`."""
        full = {
            "symbol": None,
            "date": None,
            "epsActual": None,
            "epsEstimated": None,
            "revenueActual": None,
            "revenueEstimated": None,
            "time": None,
            "periodEnding": None,
            "fiscalPeriod": None,
            "fiscalYear": None,
            "confirmed": False,
            "lastUpdated": row.get("date"),
            **row,
        }
        selected = full["date"]
        if redated:
            full["date"] = (date.fromisoformat(selected) + timedelta(days=1)).isoformat()
        with self.lock:
            self.calendar = [
                (day, r)
                for day, r in self.calendar
                if (r["symbol"], day) != (full["symbol"], selected)
            ] + [(selected, full)]

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _q in self.requests if p.endswith(path))

    # --- the server ----------------------------------------------------------------------
    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        with self.lock:
            if path.endswith("/earnings-calendar"):
                start, end = query["from"][0], query["to"][0]
                page = int((query.get("page") or ["0"])[0])
                times = (query.get("includeReportTimes") or [""])[0] == "true"
                rows = [r for day, r in self.calendar if start <= day <= end]
                rows += [
                    {**FOREIGN, "date": day} for day, _r in self.calendar if start <= day <= end
                ]
                if not times:
                    rows = [{k: v for k, v in r.items() if k not in _WITHOUT_TIMES} for r in rows]
                rows = list(reversed(rows))  # not sorted
                return 200, rows[page * PAGE_ROWS : (page + 1) * PAGE_ROWS]
            if path.endswith("/batch-quote"):
                symbols = (query.get("symbols") or [""])[0].upper().split(",")
                return 200, [self.quotes[s] for s in symbols if s in self.quotes]
        return 404, {"Error Message": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with fake.lock:
                    fake.requests.append((parts.path, query))
                if (query.get("apikey") or [""])[0] != fake.apikey:
                    status, body = 401, BAD_KEY
                else:
                    status, body = fake._answer(parts.path, query)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
