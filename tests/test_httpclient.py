"""The SSRF guard: refused host forms at check time and at connect time (zero connections
reach a listener), the escape hatches, DNS rebinding, and URL redaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
import pytest

from service.errors import UnsafeTargetError
from service.httpclient import TargetGuard, build_client, check_target, redact_url
from tests.servers import Receiver

NONE: frozenset[str] = frozenset()
LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "0x7f000001",
    "2130706433",
    "127.1",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
]
PRIVATE = ["10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[fd00::1]"]
ALWAYS_REFUSED = [
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "0.0.0.0",
    "[::]",
    "224.0.0.1",
    "metadata.google.internal",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def listener() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.mark.parametrize("host", LOOPBACK_FORMS + PRIVATE + ALWAYS_REFUSED)
def test_check_target_refuses_every_non_public_host_form(host: str) -> None:
    with pytest.raises(UnsafeTargetError) as caught:
        check_target(
            f"http://{host}/latest/meta-data/?token=s3cret", allow_private=False, allowed_hosts=NONE
        )
    assert "meta-data" not in str(caught.value) and "s3cret" not in str(caught.value)
    assert "refused target" in str(caught.value)


@pytest.mark.parametrize("host", LOOPBACK_FORMS + PRIVATE)
def test_allow_private_admits_loopback_and_private_targets(host: str) -> None:
    check_target(f"http://{host}/", allow_private=True, allowed_hosts=NONE)


@pytest.mark.parametrize("host", ALWAYS_REFUSED)
def test_metadata_link_local_and_unspecified_stay_refused_with_allow_private(host: str) -> None:
    with pytest.raises(UnsafeTargetError) as caught:
        check_target(f"http://{host}/", allow_private=True, allowed_hosts=NONE)
    assert "ALLOW_PRIVATE_TARGETS" not in str(caught.value)


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "localhost"])
def test_a_host_in_allowed_hosts_is_admitted(host: str) -> None:
    check_target(f"http://{host}/", allow_private=False, allowed_hosts=frozenset({host}))


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "example.com/hook", "http://[::1"],
)
def test_check_target_refuses_other_schemes_and_malformed_urls(url: str) -> None:
    with pytest.raises(UnsafeTargetError):
        check_target(url, allow_private=True, allowed_hosts=NONE)


def test_check_target_passes_a_public_address_and_a_name_that_does_not_resolve_now() -> None:
    check_target("https://93.184.216.34/hook", allow_private=False, allowed_hosts=NONE)
    check_target(
        "https://hooks.example.com/x",
        allow_private=False,
        allowed_hosts=NONE,
        resolve=lambda host, port: (_ for _ in ()).throw(OSError("no DNS")),
    )


def test_check_target_refuses_a_name_if_any_of_its_addresses_is_private() -> None:
    with pytest.raises(UnsafeTargetError, match=r"10\.1\.2\.3"):
        check_target(
            "https://hooks.example.com/x",
            allow_private=False,
            allowed_hosts=NONE,
            resolve=lambda host, port: ["93.184.216.34", "10.1.2.3"],
        )


@pytest.mark.anyio
@pytest.mark.parametrize("host", [*LOOPBACK_FORMS, "[fd00::1]", "169.254.169.254", "0.0.0.0"])
async def test_the_guarded_client_refuses_at_connect_and_no_connection_is_made(
    listener: Receiver, host: str
) -> None:
    # httpx itself refuses a leading-zero (octal) IPv4 address as an invalid URL.
    async with build_client(timeout=2.0, guard=TargetGuard()) as client:
        with pytest.raises((UnsafeTargetError, httpx.InvalidURL)):
            await client.post(f"http://{host}:{listener.port}/hook", content=b"{}")
    assert listener.connections == 0 and listener.requests == []


@pytest.mark.anyio
async def test_allow_private_lets_the_guarded_client_reach_a_local_receiver(
    listener: Receiver,
) -> None:
    async with build_client(timeout=2.0, guard=TargetGuard(allow_private=True)) as client:
        response = await client.post(f"http://0x7f000001:{listener.port}/hook", content=b"{}")
    assert response.status_code == 200 and listener.connections == 1


@pytest.mark.anyio
async def test_a_host_in_allowed_hosts_is_reached_without_allow_private(listener: Receiver) -> None:
    guard = TargetGuard(allowed_hosts=frozenset({"127.0.0.1"}))
    async with build_client(timeout=2.0, guard=guard) as client:
        response = await client.post(f"{listener.url}/hook", content=b"{}")
    assert response.status_code == 200 and listener.connections == 1


class Rebinding:
    """A DNS server that answers a public address first and loopback afterwards."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def sync(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.pop(0)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        return self.sync(host, port)


@pytest.mark.anyio
async def test_dns_rebinding_between_check_and_connect_is_refused_at_connect(
    listener: Receiver,
) -> None:
    dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    url = f"http://hooks.example.com:{listener.port}/hook"
    check_target(url, allow_private=False, allowed_hosts=NONE, resolve=dns.sync)  # passes

    async with build_client(timeout=2.0, guard=TargetGuard(resolve=dns)) as client:
        with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 \(loopback\)"):
            await client.post(url, content=b"{}")
    assert dns.asked == ["hooks.example.com", "hooks.example.com"]
    assert listener.connections == 0


@pytest.mark.anyio
async def test_the_guard_connects_to_the_address_it_checked_and_keeps_the_host_header(
    listener: Receiver,
) -> None:
    dns = Rebinding(["127.0.0.1"])
    guard = TargetGuard(allow_private=True, resolve=dns)
    async with build_client(timeout=2.0, guard=guard) as client:
        await client.post(f"http://hooks.example.com:{listener.port}/hook", content=b"{}")
    [request] = listener.requests
    assert request.headers["host"] == f"hooks.example.com:{listener.port}"


@pytest.mark.anyio
async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async def no_dns(host: str, port: int) -> Sequence[str]:
        raise OSError("no DNS")

    async with build_client(timeout=2.0, guard=TargetGuard(resolve=no_dns)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://hooks.example.com/hook", content=b"{}")


@pytest.mark.anyio
async def test_a_redirect_to_the_metadata_address_is_not_followed(listener: Receiver) -> None:
    from tests.servers import Reply

    listener.script(Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    async with build_client(timeout=2.0, guard=TargetGuard(allow_private=True)) as client:
        response = await client.post(f"{listener.url}/hook", content=b"{}")
    assert response.status_code == 302 and len(listener.requests) == 1


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com/***"),
        ("https://x.example/h?token=abc&page=2", "https://x.example/***"),
        # Azure Functions: the key is `code`, a name no list of secret names would hold
        (
            "https://fn.azurewebsites.net/api/hook?code=S3CRETkey==",
            "https://fn.azurewebsites.net/***",
        ),
        ("https://x.example/?code=S3CRET", "https://x.example/***"),
        ("https://user:pw@x.example:8443/a#frag", "https://x.example:8443/***"),
        ("http://[::1]:8080/hook", "http://[::1]:8080/***"),
        ("http://example.com/", "http://example.com/"),
        ("http://example.com", "http://example.com"),
    ],
)
def test_redact_url_keeps_scheme_and_host_and_masks_the_whole_path_and_query(
    url: str, redacted: str
) -> None:
    assert redact_url(url) == redacted
