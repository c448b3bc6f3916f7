"""FakeFinnhub whose `/quote` answers with a charset no text codec reads
(`content-type: application/json; charset=hex`); every other request is answered the
FakeFinnhub way."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.fakes.finnhub import FakeFinnhub


class CharsetFinnhub(FakeFinnhub):
    charset = "hex"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        base = super()._handler()

        class Handler(base):  # type: ignore[valid-type, misc]
            def send_header(self, keyword: str, value: str) -> None:
                if keyword.lower() == "content-type" and urlsplit(self.path).path.endswith(
                    "/quote"
                ):
                    value = f"application/json; charset={fake.charset}"
                super().send_header(keyword, value)

        return Handler
