"""CPU per request of the upstream HTTP client alone: Skylane's own (transport/h1.py, what the gateway
uses) against httpx (SKYLANE_HTTP_TRANSPORT=httpx), aiohttp and a bare asyncio client (bench/loadgen.py,
the floor), posting to the fake upstream.

    .venv/bin/python bench/client_cpu.py h1,httpx,asyncio        # the project's own clients
    bench/.peers/bench-venv/bin/python bench/client_cpu.py aiohttp  # aiohttp lives in the bench venv
Prints one JSON object: {"httpx": {"c1": µs, "c16": µs}, ..., "versions": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from loadgen import Request, run_load  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


async def _cpu_per_request(post: Callable[[], Awaitable[None]], concurrency: int, n: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await post()

    await asyncio.gather(*(one() for _ in range(200)))  # warm-up: connections open, code paths hot
    t0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.process_time() - t0) / n * 1e6


async def _httpx(url: str, concurrency: int, n: int) -> float:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                                 trust_env=False) as client:
        async def post() -> None:
            r = await client.post(url, content=BODY, headers=HEADERS)
            r.json()

        return await _cpu_per_request(post, concurrency, n)


async def _h1(url: str, concurrency: int, n: int) -> float:
    from skylane.transport.h1 import H1Client

    client = H1Client(connect_timeout=5, read_timeout=30)

    async def post() -> None:
        r = await client.post(url, content=BODY, headers=HEADERS)
        r.json()

    try:
        return await _cpu_per_request(post, concurrency, n)
    finally:
        await client.aclose()


async def _aiohttp(url: str, concurrency: int, n: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def post() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as r:
                json.loads(await r.read())

        return await _cpu_per_request(post, concurrency, n)


async def _bare(port: int, concurrency: int, n: int) -> float:
    req = [Request("/v1/chat/completions", BODY, tuple(HEADERS.items()))]
    await run_load("127.0.0.1", port, req, concurrency=concurrency, count=200)
    t0 = time.process_time()
    await run_load("127.0.0.1", port, req, concurrency=concurrency, count=n)
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    wanted = (sys.argv[1] if len(sys.argv) > 1 else "h1,httpx,aiohttp,asyncio").split(",")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    fake = subprocess.Popen([sys.executable, str(BENCH / "fake_upstream.py"), "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert fake.stdout is not None
        port = json.loads(fake.stdout.readline())["port"]
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        out: dict[str, object] = {}
        versions = {}
        for name, fn in (("h1", lambda c: _h1(url, c, n)), ("httpx", lambda c: _httpx(url, c, n)),
                         ("aiohttp", lambda c: _aiohttp(url, c, n)),
                         ("asyncio", lambda c: _bare(port, c, n))):
            if name not in wanted:
                continue
            out[name] = {f"c{c}": round(asyncio.run(fn(c)), 1) for c in (1, 16)}
            for pkg in {"httpx": ("httpx", "httpcore", "anyio"), "aiohttp": ("aiohttp",)}.get(name, ()):
                versions[pkg] = version(pkg)
        out["versions"] = versions
        print(json.dumps(out))
    finally:
        fake.terminate()
        fake.wait(10)
        if fake.stdout is not None:
            fake.stdout.close()


if __name__ == "__main__":
    main()
