"""A provider reply larger than 8 MiB is refused as malformed while it streams in: the
rest is never read into memory (issue #10.3's 512 MB error body, on the provider side)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from service.errors import ProviderDataError
from service.providers.wire import MAX_BODY
from tests.providers.test_contract import VENDORS, Vendor

CHUNK = b" " * 65_536


class Endless(httpx.AsyncByteStream):
    """64 KiB chunks, up to 512 MiB; counts what was read."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < 512 * 1024 * 1024:
            self.sent += len(CHUNK)
            yield CHUNK


@pytest.mark.anyio
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_a_huge_reply_is_refused_after_8_mib(vendor: Vendor, clock):
    stream = Endless()
    provider = vendor.make(clock)
    try:
        with respx.mock(assert_all_mocked=True) as router:
            router.route(url__startswith=vendor.base).mock(httpx.Response(500, stream=stream))
            with pytest.raises(ProviderDataError, match="more than 8 MB"):
                await provider.quotes(["AAPL"])
    finally:
        await provider.aclose()
    assert stream.sent <= MAX_BODY + 2 * len(CHUNK)
