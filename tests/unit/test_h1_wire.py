"""The gateway's own HTTP/1.1 client (transport/h1.py, h1_wire.py) on one connection: the request's bytes,
keep-alive and its end, chunked and streamed bodies, bodies until close, HTTP/1.0, interim 1xx answers,
malformed answers, gzip and deflate, the headers mapping and json, answers split across packets, and a
large body under back-pressure.

Each test starts a raw asyncio server on 127.0.0.1 (tests/unit/h1_servers.py) that writes exact HTTP/1.1
bytes and records every request it received, byte for byte; the client is the real one, unpatched.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib

import pytest

from skylane.transport import errors
from tests.unit.h1_servers import Peer, aio, head_lines, ok, pool, replies, serving

# ---- the request, keep-alive and its end ---------------------------------------------------------


@aio
async def test_keepalive_reuses_one_connection_and_sends_exact_request() -> None:
    async with serving(replies(ok(b"first"), ok(b"second"))) as wire, pool() as client:
        body = b'{"model": "m", "input": "hi"}'
        one = await client.post(wire.url("/v1/x?y=1"), content=body, headers={"x-api-key": "k1"})
        two = await client.post(wire.url("/v1/x?y=1"), content=b"2", headers={"x-api-key": "k2"})
        assert (one.status_code, one.content, two.status_code, two.content) == (200, b"first", 200, b"second")
        assert wire.connections == 1
        first = wire.requests[0]
        lines = head_lines(first)
        assert lines[0] == b"POST /v1/x?y=1 HTTP/1.1"
        assert f"host: 127.0.0.1:{wire.port}".encode() in lines
        assert b"x-api-key: k1" in lines
        assert b"content-length: %d" % len(body) in [line.lower() for line in lines]
        assert first.endswith(b"\r\n\r\n" + body)
        assert first.count(body) == 1
        assert b"x-api-key: k2" in head_lines(wire.requests[1])


def named(request: bytes, *names: bytes) -> list[bytes]:
    """The request's header lines (in lower case) with one of these names."""
    lines = [line.lower() for line in head_lines(request)[1:]]
    return [line for line in lines if line.partition(b":")[0].strip() in names]


@aio
async def test_callers_host_length_encoding_and_connection_headers_are_not_sent() -> None:
    # the framing is the client's: a caller's Host would misroute the request, a caller's length or
    # Transfer-Encoding next to the client's would desynchronise the connection (request smuggling)
    body = b'{"model": "m", "input": "hi"}'
    own = ({"Host": "evil.example", "Content-Length": "999", "Transfer-Encoding": "chunked", "Connection": "close"},
           {"HOST": "evil.example", "content-LENGTH": "0", "TRANSFER-encoding": "gzip", "connection": "upgrade"},
           {"host": "evil.example:1", "content-length": str(len(body)), "transfer-encoding": "identity",
            "CONNECTION": "keep-alive"})

    async with serving(replies(ok(b"fine"))) as wire, pool() as client:
        for headers in own:
            resp = await client.post(wire.url(), content=body, headers={**headers, "x-kept": "1"})
            assert resp.content == b"fine"
        assert (wire.connections, len(wire.requests)) == (1, len(own))
        for request in wire.requests:
            assert named(request, b"host") == [f"host: 127.0.0.1:{wire.port}".encode()]
            assert named(request, b"content-length") == [b"content-length: %d" % len(body)]
            assert named(request, b"transfer-encoding", b"connection") == []
            assert named(request, b"x-kept") == [b"x-kept: 1"]
            assert request.endswith(b"\r\n\r\n" + body)


@aio
async def test_chunked_stream_yields_pieces_as_they_arrive_and_connection_is_reused() -> None:
    second_sent: list[float] = []

    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n")
        await asyncio.sleep(0.05)
        second_sent.append(time.monotonic())
        await c.send(b"5\r\nworld\r\n0\r\n\r\n")
        await replies(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nA;x=y\r\n0123456789\r\n"
                      b"0\r\n\r\n")(c)

    async with serving(handler) as wire, pool() as client:
        resp = await client.send(client.build_request("POST", wire.url(), content=b"q"), stream=True)
        pieces: list[bytes] = []
        arrived: list[float] = []
        async for piece in resp.aiter_raw():
            pieces.append(piece)
            arrived.append(time.monotonic())
        assert pieces[0] == b"hello "
        assert b"".join(pieces) == b"hello world"
        assert arrived[0] < second_sent[0]
        again = await client.post(wire.url(), content=b"q")
        assert again.content == b"abc0123456789"
        assert wire.connections == 1


@aio
async def test_body_until_close_is_read_whole_and_next_request_opens_new_connection() -> None:
    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart one, ")
        await asyncio.sleep(0.02)
        await c.send(b"part two")

    async with serving(handler) as wire, pool() as client:
        assert (await client.post(wire.url())).content == b"part one, part two"
        assert (await client.post(wire.url())).content == b"part one, part two"
        assert wire.connections == 2


@aio
async def test_connection_close_header_is_honoured_even_if_server_keeps_socket_open() -> None:
    async with serving(replies(ok(b"bye", b"Connection: close"))) as wire, pool() as client:
        assert (await client.post(wire.url())).content == b"bye"
        assert (await client.post(wire.url())).content == b"bye"
        assert wire.connections == 2


@aio
async def test_http10_answer_is_not_reused_but_204_is() -> None:
    async with serving(replies(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")) as wire, pool() as client:
        assert (await client.post(wire.url())).content == b"ok"
        assert (await client.post(wire.url())).content == b"ok"
        assert wire.connections == 2
    async with serving(replies(b"HTTP/1.1 204 No Content\r\n\r\n")) as wire, pool() as client:
        for _ in range(2):
            resp = await client.post(wire.url())
            assert (resp.status_code, resp.content) == (204, b"")
        assert wire.connections == 1


@aio
async def test_interim_103_is_skipped_for_the_final_answer() -> None:
    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(0.02)
        await c.send(ok(b"final", b"x-final: 1"))
        await replies(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"again"))(c)

    async with serving(handler) as wire, pool() as client:
        resp = await client.post(wire.url())
        assert (resp.status_code, resp.content) == (200, b"final")
        assert resp.headers.get("x-final") == "1" and "link" not in resp.headers
        again = await client.post(wire.url())
        assert (again.status_code, again.content) == (200, b"again")
        assert wire.connections == 1


@aio
async def test_malformed_answers_raise_remote_protocol_error() -> None:
    bad = (b"HTTP/1.1 abc\r\n\r\n", b"hello\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n")

    async with serving(replies(*bad)) as wire, pool() as client:
        for _ in bad:
            with pytest.raises(errors.RemoteProtocolError):
                await client.post(wire.url())
        assert wire.connections == 3  # a connection that carried garbage is never reused


# ---- reading answers -----------------------------------------------------------------------------


@aio
async def test_gzip_and_deflate_bodies_are_decoded() -> None:
    text = b"decoded text " * 50
    deflated = zlib.compress(text)
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, deflated[:10], len(deflated) - 10, deflated[10:])
    answers = (ok(gzip.compress(text), b"Content-Encoding: gzip"),
               b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\ntransfer-encoding: chunked\r\n\r\n" + chunked)

    async with serving(replies(*answers)) as wire, pool() as client:
        assert (await client.post(wire.url())).content == text
        assert (await client.post(wire.url())).content == text


def raw_deflate(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=-15)  # deflate without the zlib header, as some servers send it
    return squeeze.compress(data) + squeeze.flush()


@aio
async def test_raw_deflate_body_is_decoded_whole_and_streamed() -> None:
    text = b"raw deflate text " * 50
    raw = raw_deflate(text)
    assert zlib.decompress(raw, -15) == text and raw[:2] != zlib.compress(text)[:2]

    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(ok(raw, b"Content-Encoding: deflate"))
        await c.request()
        await c.send(b"HTTP/1.1 200 OK\r\ncontent-encoding: Deflate\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n" % (5, raw[:5]))
        await asyncio.sleep(0.02)  # the rest arrives separately: the raw decoder carries on, not restarts
        await c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw) - 5, raw[5:]))

    async with serving(handler) as wire, pool() as client:
        assert (await client.post(wire.url())).content == text
        resp = await client.send(client.build_request("POST", wire.url()), stream=True)
        assert b"".join([piece async for piece in resp.aiter_raw()]) == text
        assert wire.connections == 1


@aio
async def test_raw_deflate_body_whose_first_piece_is_one_byte_is_decoded() -> None:
    # one byte cannot tell a zlib header from raw deflate: the decoder must not settle on the format yet
    text = b"raw deflate text " * 50
    raw = raw_deflate(text)

    async def handler(c: Peer) -> None:
        await c.request()
        await c.send(b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"1\r\n%s\r\n" % raw[:1])
        await asyncio.sleep(0.05)
        await c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw) - 1, raw[1:]))

    async with serving(handler) as wire, pool() as client:
        assert (await client.post(wire.url())).content == text


@aio
async def test_undecodable_gzip_body_raises_a_transport_error() -> None:
    # httpx raises DecodingError here, which transport/http.py maps to TransportError; pipeline/attempt.py
    # turns only TransportError/OSError into a provider error, so anything else escapes the attempt; this
    # client calls it the provider's protocol error (a TransportError)
    async with serving(replies(ok(b"not gzip at all", b"Content-Encoding: gzip"))) as wire, pool() as client:
        with pytest.raises(errors.RemoteProtocolError):
            await client.post(wire.url())


@aio
async def test_headers_are_case_insensitive_and_repeats_joined() -> None:
    answer = ok(b"{}", b"Content-Type: application/json", b"X-RateLimit-Reset: 30", b"X-Dup: a", b"x-dup: b")

    async with serving(replies(answer)) as wire, pool() as client:
        headers = (await client.post(wire.url())).headers
        assert headers["Content-Type"] == "application/json"
        assert headers.get("x-ratelimit-reset") == headers.get("X-RATELIMIT-RESET") == "30"
        assert headers["x-dup"] == "a, b"
        assert "CONTENT-TYPE" in headers and "x-missing" not in headers
        assert headers.get("x-missing", "d") == "d"


@aio
async def test_head_split_across_packets_and_json() -> None:
    answer = ok(b'{"a": [1, 2], "b": "\xc3\xa9"}', b"X-Long-Header-Name: some-value")

    async def handler(c: Peer) -> None:
        await c.request()
        for i in range(0, len(answer), 7):
            await c.send(answer[i:i + 7])
            await asyncio.sleep(0.002)

    async with serving(handler) as wire, pool() as client:
        resp = await client.post(wire.url())
        assert resp.headers["x-long-header-name"] == "some-value"
        assert resp.json() == {"a": [1, 2], "b": "é"}


@aio
async def test_large_body_with_backpressure_is_exact() -> None:
    body = bytes(range(256)) * (3 * 4096)  # 3 MiB: above the 1 MiB at which reading pauses

    async with serving(replies(ok(body), ok(b"next"))) as wire, pool() as client:
        resp = await client.send(client.build_request("POST", wire.url()), stream=True)
        await asyncio.sleep(0.1)  # nobody reads: the buffer fills and the socket is paused
        assert await resp.aread() == body
        assert (await client.post(wire.url())).content == b"next"
        assert wire.connections == 1
