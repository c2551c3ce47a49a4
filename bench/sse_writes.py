"""Do SSE events that arrive together leave together, and does any event wait?

The fake upstream (POST /_mode) sends each stream in a chosen number of writes, a gap apart, and
records when it wrote each content token (tok0, tok1, ...). A raw-socket client reads the target's
response and records, for each read, its time and the HTTP chunks (chunked transfer encoding) it
completed, and the time each token arrived. Two runs per case:

- burst: all events in a few writes (e.g. 4, 5 ms apart): how many HTTP chunks (≈ the gateway's
  body writes: uvicorn frames each ASGI body message as one chunk) and reads the client gets;
  coalescing means chunks ≤ upstream writes + a small constant.
- paced: one event per write, 1 ms apart: each token's arrival at the client minus its write by
  the upstream (same machine, CLOCK_MONOTONIC in both processes); coalescing must not hold an
  event back waiting for the next one.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any

import httpx
from loadgen import Request, percentile

__all__ = ["StreamTrace", "measure", "read_stream", "summarize_case"]

_TOKEN = re.compile(rb"tok(\d+) ")


class StreamTrace:
    """One response as the client saw it."""

    def __init__(self) -> None:
        self.status = 0
        self.reads = 0  # socket reads that returned body bytes
        self.chunks = 0  # HTTP chunks of the body (without the last, empty one)
        self.tok_arrival: dict[int, float] = {}  # token index -> time.monotonic() of the read that completed it


async def read_stream(host: str, port: int, req: Request, timeout: float = 30.0) -> StreamTrace:
    """Send one request on a fresh connection and read its chunked response to the end."""
    reader, writer = await asyncio.open_connection(host, port)
    tr = StreamTrace()
    try:
        writer.write(req.wire(host, port))
        buf = bytearray()
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += await _read(reader, timeout)
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        tr.status = int(head[0].split(" ", 2)[1])
        if not any(h.lower().startswith("transfer-encoding:") and "chunked" in h.lower() for h in head[1:]):
            raise ValueError(f"not a chunked response (HTTP {tr.status})")
        del buf[:end + 4]
        body = bytearray()  # the de-chunked body so far
        scanned = 0  # where the token search resumes in `body`
        fresh = bool(buf)
        while True:
            if not fresh:
                buf += await _read(reader, timeout)
            fresh = False
            tr.reads += 1
            now = time.monotonic()
            finished = False
            while (nl := buf.find(b"\r\n")) >= 0:
                size = int(bytes(buf[:nl]).split(b";", 1)[0], 16)
                if size == 0:
                    finished = True
                    break
                if len(buf) < nl + 2 + size + 2:
                    break
                body += buf[nl + 2:nl + 2 + size]
                del buf[:nl + 2 + size + 2]
                tr.chunks += 1
            for m in _TOKEN.finditer(body, max(0, scanned)):
                tr.tok_arrival.setdefault(int(m.group(1)), now)
            scanned = max(0, len(body) - 16)  # a token cut by the end of a chunk is found next time
            if finished:
                return tr
    finally:
        writer.close()


async def _read(reader: asyncio.StreamReader, timeout: float) -> bytes:
    data = await asyncio.wait_for(reader.read(262144), timeout)
    if not data:
        raise ConnectionError("connection closed before the end of the stream")
    return data


def _run_streams(host: str, port: int, req: Request, fake_url: str, writes: int, gap_ms: float,
                 streams: int) -> tuple[list[StreamTrace], list[dict[str, Any]]]:
    httpx.post(fake_url + "/_mode", json={"writes": writes, "gap_ms": gap_ms}).raise_for_status()
    try:
        asyncio.run(read_stream(host, port, req))  # warm-up: connection pools, caches
        httpx.post(fake_url + "/_reset").raise_for_status()
        traces = [asyncio.run(read_stream(host, port, req)) for _ in range(streams)]
        time.sleep(0.05)
        upstream = httpx.get(fake_url + "/_writes").json()["streams"]
    finally:
        httpx.post(fake_url + "/_mode", json={"writes": 0, "gap_ms": 0})
    return traces, upstream


def summarize_case(burst: tuple[list[StreamTrace], list[dict[str, Any]]],
                   paced: tuple[list[StreamTrace], list[dict[str, Any]]]) -> dict[str, Any]:
    """Chunks and reads per stream in the burst run; per-token delays (ms) in the paced run."""
    b_traces, b_up = burst
    out: dict[str, Any] = {
        "streams": len(b_traces),
        "upstream_writes": statistics.median(int(u["writes"]) for u in b_up) if b_up else None,
        "chunks_p50": statistics.median(t.chunks for t in b_traces),
        "chunks_max": max(t.chunks for t in b_traces),
        "reads_p50": statistics.median(t.reads for t in b_traces),
        "errors": sum(1 for t in b_traces if t.status != 200) + abs(len(b_traces) - len(b_up)),
    }
    p_traces, p_up = paced
    delays: list[float] = []
    last: list[float] = []
    for tr, up in zip(p_traces, p_up, strict=False):
        sent = {int(k): float(v) for k, v in up["tok_times"].items()}
        common = sorted(set(sent) & set(tr.tok_arrival))
        if not common:
            continue
        delays += [(tr.tok_arrival[i] - sent[i]) * 1000 for i in common]
        last.append((tr.tok_arrival[common[-1]] - sent[common[-1]]) * 1000)
    out.update({
        "paced_streams": len(p_traces),
        "paced_upstream_writes": statistics.median(int(u["writes"]) for u in p_up) if p_up else None,
        "paced_chunks_p50": statistics.median(t.chunks for t in p_traces) if p_traces else None,
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "delay_max_ms": max(delays, default=float("nan")),
        "last_delay_p50_ms": statistics.median(last) if last else float("nan"),
        "tokens_timed": len(delays),
        "paced_errors": sum(1 for t in p_traces if t.status != 200) + abs(len(p_traces) - len(p_up)),
    })
    return out


def measure(host: str, port: int, req: Request, fake_url: str, *, burst_writes: int = 4, burst_gap_ms: float = 5.0,
            pace_ms: float = 1.0, streams: int = 10, paced_streams: int = 5) -> dict[str, Any]:
    """Both runs against one target; the fake upstream is back in its one-write mode afterwards."""
    burst = _run_streams(host, port, req, fake_url, burst_writes, burst_gap_ms, streams)
    paced = _run_streams(host, port, req, fake_url, 100_000, pace_ms, paced_streams)
    out = summarize_case(burst, paced)
    out.update({"burst_writes": burst_writes, "burst_gap_ms": burst_gap_ms, "pace_ms": pace_ms})
    return out
