"""skylane.http.protocol: a response's head leaves with its first body bytes, never later than the end
of the event-loop turn it was written in; everything else reaches the socket as written."""

from __future__ import annotations

import asyncio
from typing import Any

from skylane.http.protocol import HttpProtocol, _HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording:
    """What reached the socket, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(name, default)


def test_head_and_body_written_in_one_turn_leave_in_one_write() -> None:
    async def run() -> list[bytes]:
        sock = Recording()
        t = _HeadWithBody(sock, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        assert sock.writes == []  # held for the body
        t.write(b"{}")
        await asyncio.sleep(0)
        return sock.writes

    assert asyncio.run(run()) == [HEAD + b"{}"]


def test_a_head_alone_leaves_at_the_end_of_the_turn() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        sock = Recording()
        t = _HeadWithBody(sock, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        await asyncio.sleep(0)  # the turn ends: the head goes out without waiting for a stream's first event
        before = list(sock.writes)
        t.write(b"data: 1\n\n")
        return before, sock.writes

    before, after = asyncio.run(run())
    assert before == [HEAD]
    assert after == [HEAD, b"data: 1\n\n"]  # body bytes are never held


def test_close_sends_a_held_head_first_and_other_attributes_are_the_socket_s() -> None:
    async def run() -> Recording:
        sock = Recording()
        t = _HeadWithBody(sock, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert t.get_extra_info("peername") == ("127.0.0.1", 5000)
        t.write(HEAD)
        t.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
        return sock

    sock = asyncio.run(run())
    assert sock.writes == [HEAD] and sock.closed


def test_the_protocol_serves_a_request_with_one_write_for_head_and_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"),
                                                                       (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    async def run() -> list[bytes]:
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        config = Config(app, http=HttpProtocol, lifespan="off", access_log=False)
        config.load()
        protocol = HttpProtocol(config=config, server_state=ServerState(), app_state={})
        sock = Recording()
        protocol.connection_made(sock)  # type: ignore[arg-type]
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0)
        return sock.writes

    writes = asyncio.run(run())
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b'\r\n\r\n{"ok":true}')
