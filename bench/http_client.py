"""Benchmark: CPU per request of the channels' HTTP client (service/h11client.py) against
the httpx client it replaced (`build_client(guard=...)`, streamed as `post()` read it).

Both POST a 400-byte JSON body through the SSRF guard (private targets allowed) to a
minimal HTTP/1.1 keep-alive server on 127.0.0.1 that runs in a child process (so that its
CPU is not counted), with `--concurrency` requests in flight on one client. The figure is
this process's CPU time per request (`time.process_time()`), and requests per second of
wall clock; on a shared machine the CPU figure says more.

    .venv/bin/python bench/http_client.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable

BODY = b'{"x":"' + b"a" * 392 + b'"}'


def serve(port_out: multiprocessing.SimpleQueue[int]) -> None:
    """A minimal HTTP/1.1 server: answers every request `200` with a 2-byte body."""

    class Reply(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buffer[:end].lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Reply, "127.0.0.1", 0)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def measure(
    name: str, send: Callable[[], Awaitable[int]], requests: int, concurrency: int
) -> None:
    for _ in range(concurrency):  # warm up: connections open, code paths imported
        await send()
    slots = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with slots:
            return await send()

    cpu, wall = time.process_time(), time.perf_counter()
    statuses = await asyncio.gather(*(one() for _ in range(requests)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert set(statuses) == {200}, set(statuses)
    print(
        f"{name:<28} CPU per request {cpu / requests * 1e3:6.3f} ms   "
        f"{requests / wall:7.0f} requests/s"
    )


async def run(port: int, requests: int, concurrency: int) -> None:
    from service.h11client import H11Client
    from service.httpclient import TargetGuard, build_client, read_at_most
    from service.notify.http import post

    url = f"http://127.0.0.1:{port}/hook"
    headers = {"content-type": "application/json"}
    guard = TargetGuard(allow_private=True)

    async with H11Client(timeout=10.0, guard=guard) as wire:

        async def h11_post() -> int:
            return (await post(wire, url, BODY, headers)).status_code

        await measure("h11 (H11Client, post())", h11_post, requests, concurrency)

    async with build_client(timeout=10.0, guard=guard) as client:

        async def httpx_post() -> int:
            async with client.stream(
                "POST", url, content=BODY, headers={"accept-encoding": "identity", **headers}
            ) as response:
                await read_at_most(response.aiter_raw(), 64 * 1024)
                return response.status_code

        await measure("httpx (stream, guarded)", httpx_post, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    ports: multiprocessing.SimpleQueue[int] = multiprocessing.SimpleQueue()
    server = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
    server.start()
    try:
        port = ports.get()
        print(f"requests {args.requests}, {args.concurrency} in flight, body {len(BODY)} B")
        asyncio.run(run(port, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
