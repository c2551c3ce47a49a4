"""The gateway's own HTTP/1.1 client (transport/h1.py) as a pool, and how it fails: reuse and the stale
connection's one retry, refused connections, a failed TLS handshake, read timeouts, the pool's limit and
its waiters, idle connections of another origin, cancellation, and what it refuses to send (headers,
URLs).

Each test starts a raw asyncio server on 127.0.0.1 (tests/unit/h1_servers.py) that writes exact HTTP/1.1
bytes and counts the TCP connections it accepted; the client is the real one, unpatched.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from skylane.transport import errors
from tests.unit.h1_servers import Peer, aio, head_lines, ok, pool, replies, serving, silent

# ---- connections: reuse, close, stale ------------------------------------------------------------


@aio
async def test_idle_connection_closed_by_provider_is_replaced() -> None:
    async with serving(replies(ok(b"a"), ok(b"b"), close_after=True)) as wire, pool() as client:
        assert (await client.post(wire.url())).content == b"a"
        await asyncio.sleep(0.05)  # the provider's close reaches the idle connection
        assert (await client.post(wire.url())).content == b"b"
        assert wire.connections == 2


@aio
async def test_reused_connection_closed_before_answer_is_retried_once_on_a_new_one() -> None:
    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(ok(b"answer %d" % len(c.wire.requests)))
        if c.number == 1:
            await c.request()  # the second request arrives: hang up without a byte of answer

    async with serving(handler) as wire, pool() as client:
        assert (await client.post(wire.url())).content == b"answer 1"
        assert (await client.post(wire.url(), content=b"again")).content == b"answer 3"
        assert wire.connections == 2
        assert wire.requests[1] == wire.requests[2] and wire.requests[2].endswith(b"again")


@aio
async def test_fresh_connection_closed_before_answer_raises_read_error_without_retry() -> None:
    async def handler(c: Peer) -> None:
        await c.request()

    async with serving(handler) as wire, pool() as client:
        with pytest.raises(errors.ReadError):
            await client.post(wire.url())
        await asyncio.sleep(0.02)
        assert (wire.connections, len(wire.requests)) == (1, 1)


@aio
async def test_provider_closing_mid_body_raises_read_error() -> None:
    truncated = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789"
    async with serving(replies(truncated, close_after=True)) as wire, pool() as client:
        with pytest.raises(errors.ReadError):
            await client.post(wire.url())
        resp = await client.send(client.build_request("POST", wire.url()), stream=True)
        with pytest.raises(errors.ReadError):
            await resp.aread()
        assert wire.connections == 2


# ---- connect, timeouts, the pool limit -----------------------------------------------------------


@aio
async def test_connection_refused_raises_connect_error_and_frees_the_slot() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with pool(max_connections=1) as client:
        for _ in range(2):  # a leaked slot would turn the second into a PoolTimeout
            with pytest.raises(errors.ConnectError):
                await client.post(f"http://127.0.0.1:{port}/v1/x")


@aio
async def test_tls_to_plain_http_server_raises_connect_error() -> None:
    async def handler(c: Peer) -> None:
        await c.reader.read(1024)  # the ClientHello
        await c.send(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    async with serving(handler) as wire, pool() as client:
        with pytest.raises(errors.ConnectError):
            await client.post(wire.url(scheme="https"))
        assert wire.connections == 1


@aio
async def test_read_timeout_before_the_head_and_mid_body() -> None:
    async def handler(c: Peer) -> None:
        if c.number == 2:  # a head and half the body, then silence
            await c.request()
            await c.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
        await silent(c)

    async with serving(handler) as wire, pool(read_timeout=0.3) as client:
        start = time.monotonic()
        with pytest.raises(errors.ReadTimeout):
            await client.post(wire.url())
        assert 0.25 <= time.monotonic() - start < 0.9
        resp = await client.send(client.build_request("POST", wire.url()), stream=True)
        assert resp.status_code == 200
        with pytest.raises(errors.ReadTimeout):
            await resp.aread()
        assert (wire.connections, len(wire.requests)) == (2, 2)


@aio
async def test_pool_limit_raises_pool_timeout_until_the_held_answer_is_closed() -> None:
    async def handler(c: Peer) -> None:
        if c.number == 1:  # the held answer: half its body, then silence
            await c.request()
            await c.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
            await c.hang()
            return
        await replies(ok(b"third"))(c)

    async with serving(handler) as wire, pool(max_connections=1, connect_timeout=0.3) as client:
        held = await client.send(client.build_request("POST", wire.url()), stream=True)
        start = time.monotonic()
        with pytest.raises(errors.PoolTimeout):
            await client.post(wire.url())
        assert 0.25 <= time.monotonic() - start < 0.9
        assert (wire.connections, len(wire.requests)) == (1, 1)
        await held.aclose()  # unfinished: the connection is dropped, not reused
        assert (await client.post(wire.url())).content == b"third"
        assert wire.connections == 2


@aio
async def test_waiter_gets_the_connection_released_by_a_finished_answer() -> None:
    async with serving(replies(ok(b"one"), ok(b"two"))) as wire, pool(max_connections=1) as client:
        held = await client.send(client.build_request("POST", wire.url()), stream=True)
        waiting = asyncio.create_task(client.post(wire.url()))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await held.aread() == b"one"
        assert (await waiting).content == b"two"
        assert wire.connections == 1


@aio
async def test_idle_connection_to_another_origin_is_closed_to_make_room() -> None:
    a_closed = asyncio.Event()

    async def first(c: Peer) -> None:
        await replies(ok(b"from a"))(c)  # returns when the client closes the connection (EOF)
        a_closed.set()

    options = {"max_connections": 1, "max_keepalive": 1, "connect_timeout": 0.3, "read_timeout": 0.5}
    async with serving(first) as a, serving(replies(ok(b"from b"))) as b, pool(**options) as client:
        assert (await client.post(a.url())).content == b"from a"
        await asyncio.sleep(0.02)
        assert not a_closed.is_set()  # A's connection idles in the pool, open, holding the only slot
        assert (await client.post(b.url())).content == b"from b"  # not a PoolTimeout
        await asyncio.wait_for(a_closed.wait(), 0.5)  # A's idle connection was closed to make room
        assert (await client.post(b.url())).content == b"from b"  # B's own idle connection is reused
        assert (a.connections, b.connections, len(b.requests)) == (1, 1, 2)


@aio
async def test_cancelled_request_frees_its_slot() -> None:
    async def handler(c: Peer) -> None:
        if c.number == 1:
            await silent(c)
        else:
            await replies(ok(b"after"))(c)

    async with serving(handler) as wire, pool(max_connections=1) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.post(wire.url()), 0.1)
        assert (await client.post(wire.url())).content == b"after"
        assert wire.connections == 2


# ---- what the client refuses to send -------------------------------------------------------------


@aio
async def test_unsendable_headers_are_refused_before_anything_is_sent() -> None:
    async with serving(replies(ok(b"fine"))) as wire, pool() as client:
        for headers in ({"x-a": "v\r\nx-evil: 1"}, {"x-a": "v\nx"}, {"x-a": "café"}, {"x\r\nevil": "v"},
                        {"x:y": "v"}):
            with pytest.raises(errors.LocalProtocolError):
                await client.post(wire.url(), headers=headers)
        await asyncio.sleep(0.05)
        assert (wire.connections, wire.requests) == (0, [])
        assert (await client.post(wire.url(), headers={"x-a": "v"})).content == b"fine"


@aio
async def test_header_names_that_are_not_tokens_are_refused_before_anything_is_sent() -> None:
    names = ("bad name", "x:y", "", "naïve", "x\ty", " x-a", "x-a ", "x(y)", "x@y", "x/y", 'x"y', "x=y", "x,y")

    async with serving(replies(ok(b"fine"))) as wire, pool() as client:
        for name in names:
            with pytest.raises(errors.LocalProtocolError):
                await client.post(wire.url(), headers={"x-ok": "1", name: "v"})
        await asyncio.sleep(0.05)
        assert (wire.connections, wire.requests) == (0, [])
        token = "X-a_b.c~!#$%&'*+^`|9"  # every kind of character a token may hold
        assert (await client.post(wire.url(), headers={token: "v"})).content == b"fine"
        assert f"{token}: v".encode() in head_lines(wire.requests[0])


@aio
async def test_unsupported_urls() -> None:
    async with pool() as client:
        for url in ("ftp://x/", "http:///no-host", "http://127.0.0.1:99999/"):
            with pytest.raises(errors.UnsupportedURL):
                await client.post(url)
        with pytest.raises(errors.LocalProtocolError):
            await client.post("http://127.0.0.1:1/a b")
