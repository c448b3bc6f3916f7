"""Any provider-side decoding error is a ProviderDataError (issue #10.11): a charset that
names no text codec (`charset=hex` raised LookupError), bytes a codec rejects whatever the
error handler (UnicodeDecodeError, UnicodeError), JSON nested deeper than the interpreter's
stack (RecursionError). Each vendor maps them the same way, and the failover moves on."""

from __future__ import annotations

import httpx
import pytest
import respx

from service.errors import ProviderDataError
from service.providers.failover import FailoverProvider
from tests.providers.conftest import FINNHUB, make_finnhub, make_nasdaq
from tests.providers.test_contract import VENDORS, Vendor, serve_nasdaq

JSON = "application/json; charset="
DEEP = "[" * 200_000 + "]" * 200_000

BODIES = [
    ("charset-hex", httpx.Response(200, headers={"content-type": JSON + "hex"}, content=b"{}")),
    ("charset-rot13", httpx.Response(200, headers={"content-type": JSON + "rot13"}, content=b"{}")),
    (
        "punycode-bytes",
        httpx.Response(200, headers={"content-type": JSON + "punycode"}, content=b"\xff{}"),
    ),
    ("idna-bytes", httpx.Response(200, headers={"content-type": JSON + "idna"}, content=b"\xff")),
    ("deep-json", httpx.Response(200, headers={"content-type": JSON + "utf-8"}, text=DEEP)),
]


@pytest.mark.anyio
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize(("case", "reply"), BODIES, ids=[b[0] for b in BODIES])
async def test_an_undecodable_body_is_a_provider_data_error(vendor: Vendor, clock, case, reply):
    provider = vendor.make(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=vendor.base).mock(reply)
            with pytest.raises(ProviderDataError) as caught:
                await provider.quotes(["AAPL"])
    finally:
        await provider.aclose()
    assert caught.value.provider == vendor.name and caught.value.retryable
    assert str(caught.value).startswith(f"{vendor.name}: ")


@pytest.mark.anyio
async def test_the_failover_moves_on_from_a_charset_it_cannot_read(clock):
    failover = FailoverProvider([make_finnhub(clock), make_nasdaq(clock)], clock=clock)
    hex_reply = httpx.Response(200, headers={"content-type": JSON + "hex"}, content=b"{}")
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=FINNHUB).mock(hex_reply)
            router.route(url__startswith="https://nasdaq.test/").mock(side_effect=serve_nasdaq)
            quotes = await failover.quotes(["AAPL"])
    finally:
        await failover.aclose()
    assert quotes["AAPL"].price == 272.11
