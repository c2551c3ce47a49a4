"""A small HTTP/1.1 load client on raw asyncio streams, for what wrk cannot report: time to first
byte of a streamed body, exact request counts (the memory run), and per-request timestamps (the
DynamoDB ordering check).

Each worker keeps one keep-alive connection and sends requests back to back. A response is read
to its end (Content-Length or chunked); `ttfb` is the time from sending the request to the first
byte of the body, `ttlb` to its last byte. Latencies are seconds (time.perf_counter).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Request", "Result", "percentile", "run_load", "summarize"]


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def wire(self, host: str, port: int) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
                 f"content-length: {len(self.body)}", "accept: */*"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class Result:
    ttfb: list[float] = field(default_factory=list)
    ttlb: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0
    wall: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) in time.monotonic()

    @property
    def count(self) -> int:
        return len(self.ttlb)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    async def _more(self) -> None:
        data = await self.reader.read(262144)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    async def exchange(self, wire: bytes) -> tuple[int, float, float, int]:
        """Send one request; return (status, ttfb, ttlb, body bytes)."""
        t0 = time.perf_counter()
        self.writer.write(wire)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            await self._more()
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[:end + 4]
        status = int(head[0].split(" ", 2)[1])
        length = -1
        chunked = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value)
            elif lname == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not buf and (chunked or length != 0):
            await self._more()
        ttfb = time.perf_counter() - t0
        if chunked:
            size = 0
            pos = 0
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    await self._more()
                    continue
                n = int(bytes(buf[pos:nl]).split(b";", 1)[0], 16)
                if n == 0:
                    while buf.find(b"\r\n", nl + 2) < 0:  # the blank line after the last chunk
                        await self._more()
                    del buf[:buf.find(b"\r\n", nl + 2) + 2]
                    break
                while len(buf) < nl + 2 + n + 2:
                    await self._more()
                size += n
                pos = nl + 2 + n + 2
                if pos > 65536:  # keep the buffer small on long streams
                    del buf[:pos]
                    pos = 0
        else:
            if length < 0:
                raise ValueError("responses without length are not supported")
            while len(buf) < length:
                await self._more()
            del buf[:length]
            size = length
        return status, ttfb, time.perf_counter() - t0, size


async def _worker(host: str, port: int, wires: Sequence[bytes], next_index: Callable[[], int | None],
                  result: Result, stop_at: float | None, pause: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    conn = _Conn(reader, writer)
    try:
        while True:
            if stop_at is not None and time.perf_counter() >= stop_at:
                return
            i = next_index()
            if i is None:
                return
            start = time.monotonic()
            status, ttfb, ttlb, size = await conn.exchange(wires[i % len(wires)])
            result.spans.append((start, time.monotonic()))
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.ttfb.append(ttfb)
            result.ttlb.append(ttlb)
            result.body_bytes += size
            if pause:
                await asyncio.sleep(pause)
    finally:
        writer.close()


async def run_load(host: str, port: int, requests: Sequence[Request], *, concurrency: int = 1,
                   count: int | None = None, duration: float | None = None, pause: float = 0.0) -> Result:
    """Send `count` requests (or for `duration` seconds), cycling through `requests`."""
    wires = [r.wire(host, port) for r in requests]
    result = Result()
    sent = 0

    def next_index() -> int | None:
        nonlocal sent
        if count is not None and sent >= count:
            return None
        sent += 1
        return sent - 1

    t0 = time.perf_counter()
    stop_at = t0 + duration if duration else None
    await asyncio.gather(*(_worker(host, port, wires, next_index, result, stop_at, pause)
                           for _ in range(concurrency)))
    result.wall = time.perf_counter() - t0
    return result


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarize(result: Result) -> dict[str, float]:
    ok = sum(n for s, n in result.statuses.items() if 200 <= s < 300)
    return {
        "requests": result.count,
        "errors": result.count - ok,
        "rps": result.count / result.wall if result.wall else 0.0,
        "ttfb_p50_ms": percentile(result.ttfb, 50) * 1000,
        "ttfb_p90_ms": percentile(result.ttfb, 90) * 1000,
        "ttfb_p99_ms": percentile(result.ttfb, 99) * 1000,
        "ttlb_p50_ms": percentile(result.ttlb, 50) * 1000,
        "ttlb_p90_ms": percentile(result.ttlb, 90) * 1000,
        "ttlb_p99_ms": percentile(result.ttlb, 99) * 1000,
    }
