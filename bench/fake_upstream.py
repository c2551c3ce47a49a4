"""A fast fake LLM upstream for the benchmark, and a counting proxy in front of DynamoDB Local.

Raw asyncio protocols (no framework), answers pre-rendered at start-up, so that a request costs
the fake a few tens of microseconds and the gateway, not the upstream, is what gets measured.

    POST /v1/chat/completions   OpenAI format: a fixed answer, or (``"stream": true``) a stream of
                                a role chunk, N content chunks, a finish chunk, a usage chunk when
                                ``stream_options.include_usage`` is set, and ``[DONE]``
    POST /v1/messages           Anthropic Messages format: a fixed answer, or the event stream
                                message_start, content_block_start, ping, N content_block_delta,
                                content_block_stop, message_delta, message_stop
    GET  /_stats                counters (JSON); POST /_reset clears them
    GET  /_trace                monotonic times of upstream requests and of DynamoDB calls seen by the
                                proxy (for ordering DynamoDB calls against the upstream call)
    POST /_mode                 {"writes": N, "gap_ms": G}: send each following stream in N writes
                                (N = 0: one write, as by default; N ≥ the number of events: one event
                                per write) G ms apart; GET /_writes: for each stream since the last
                                /_reset, its number of writes and the monotonic time of the write that
                                carried each content token (tok0, tok1, ...)

Streams are sent as HTTP/1.1 chunked bodies, one SSE event per HTTP chunk, in one write (or as
/_mode says: the SSE-coalescing case of bench/sse_writes.py).

Run: python bench/fake_upstream.py --port 0 --chunks 200 [--dynamo-target 127.0.0.1:8000]
It prints one JSON line {"port": .., "dynamo_port": ..} once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_USAGE_RE = re.compile(rb'"include_usage"\s*:\s*true')
_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"]{1,200})"')

ANSWER = "Hello from the fake upstream."


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _http(status: str, ctype: str, body: bytes, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: keep-alive\r\n\r\n")
    return head.encode() + body


def _chunked_parts(ctype: str, events: list[bytes]) -> list[bytes]:
    """The head, one HTTP chunk per event, the last chunk: join them for the whole response."""
    out = [f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncache-control: no-cache\r\n"
           "transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n".encode()]
    for ev in events:
        out.append(b"%x\r\n" % len(ev) + ev + b"\r\n")
    out.append(b"0\r\n\r\n")
    return out


def _chunked(ctype: str, events: list[bytes]) -> bytes:
    return b"".join(_chunked_parts(ctype, events))


_TOKEN_RE = re.compile(rb"tok(\d+) ")


def split_writes(parts: list[bytes], writes: int) -> list[tuple[bytes, list[int]]]:
    """Group a response's parts (head, chunks, end) into `writes` writes of about equal numbers of
    events (the head goes with the first, the end with the last); each with the content tokens it carries."""
    head, chunks, end = parts[0], parts[1:-1], parts[-1]
    n = max(1, min(writes, len(chunks)))
    out: list[tuple[bytes, list[int]]] = []
    for i in range(n):
        group = chunks[i * len(chunks) // n:(i + 1) * len(chunks) // n]
        data = (head if i == 0 else b"") + b"".join(group) + (end if i == n - 1 else b"")
        out.append((data, [int(m) for m in _TOKEN_RE.findall(b"".join(group))]))
    return out


def openai_answers(chunks: int, model: str = "gpt-4o-mini") -> tuple[dict[str, bytes], dict[str, list[bytes]]]:
    """The pre-rendered answers (whole responses) and the streams' parts (for /_mode)."""
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    full = {
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1700000000, "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER, "refusal": None,
                                             "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {**usage, "completion_tokens": 7, "total_tokens": 19},
        "service_tier": "default",
    }
    base = {"id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "system_fingerprint": "fp_bench"}

    def ev(choices: list[dict[str, object]], **extra: object) -> bytes:
        return b"data: " + _dumps({**base, "choices": choices, **extra}) + b"\n\n"

    events = [ev([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                   "logprobs": None, "finish_reason": None}])]
    for i in range(chunks):
        events.append(ev([{"index": 0, "delta": {"content": f"tok{i} "}, "logprobs": None, "finish_reason": None}]))
    events.append(ev([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    usage_ev = ev([], usage=usage)
    done = b"data: [DONE]\n\n"
    return {
        "json": _http("200 OK", "application/json", _dumps(full)),
        "stream": _chunked("text/event-stream; charset=utf-8", [*events, done]),
        "stream_usage": _chunked("text/event-stream; charset=utf-8", [*events, usage_ev, done]),
    }, {
        "stream": _chunked_parts("text/event-stream; charset=utf-8", [*events, done]),
        "stream_usage": _chunked_parts("text/event-stream; charset=utf-8", [*events, usage_ev, done]),
    }


def anthropic_answers(chunks: int, model: str = "claude-3-5-haiku-20241022") -> tuple[dict[str, bytes],
                                                                                     dict[str, list[bytes]]]:
    usage = {"input_tokens": 12, "output_tokens": 7, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 4, "service_tier": "standard"}
    full = {"id": "msg_bench0001", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}

    def ev(name: str, data: dict[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"

    events = [
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_bench0002", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 4}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
        ev("ping", {"type": "ping"}),
    ]
    for i in range(chunks):
        events.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": f"tok{i} "}}))
    events += [
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"output_tokens": chunks}}),
        ev("message_stop", {"type": "message_stop"}),
    ]
    return {
        "json": _http("200 OK", "application/json", _dumps(full), "request-id: req_bench\r\n"),
        "stream": _chunked("text/event-stream; charset=utf-8", events),
    }, {"stream": _chunked_parts("text/event-stream; charset=utf-8", events)}


class Stats:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.upstream_times: deque[float] = deque(maxlen=200_000)
        self.dynamo_calls: deque[tuple[float, str, bool]] = deque(maxlen=200_000)
        self.stream_writes: deque[dict[str, object]] = deque(maxlen=1000)

    def reset(self) -> None:
        self.counts.clear()
        self.upstream_times.clear()
        self.dynamo_calls.clear()
        self.stream_writes.clear()

    def snapshot(self) -> dict[str, object]:
        return {"counts": dict(self.counts)}

    def trace(self) -> dict[str, object]:
        return {"upstream": list(self.upstream_times), "dynamo": [list(c) for c in self.dynamo_calls]}


NOT_FOUND = _http("404 Not Found", "application/json",
                  _dumps({"error": {"message": "not found", "type": "invalid_request_error", "code": None}}))


class FakeHTTP(asyncio.Protocol):
    """HTTP/1.1 keep-alive (pipelining tolerated); Content-Length or chunked request bodies."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            start = end + 4
            if chunked:
                parsed = _dechunk(self.buf, start)
                if parsed is None:
                    return
                body, consumed = parsed
                del self.buf[:consumed]
            else:
                if len(self.buf) < start + length:
                    return
                body = bytes(self.buf[start:start + length])
                del self.buf[:start + length]
            assert self.transport is not None
            answer = self.server.answer(method, path.split("?", 1)[0], body)
            if isinstance(answer, list):
                self._send_in_writes(answer)
            else:
                self.transport.write(answer)

    def _send_in_writes(self, parts: list[bytes]) -> None:
        """A stream in the writes /_mode asks for, `gap_ms` apart (the client waits for its end before
        its next request, as HTTP/1.1 clients without pipelining do)."""
        server = self.server
        writes = split_writes(parts, int(server.mode["writes"]))
        gap = float(server.mode["gap_ms"]) / 1000
        record: dict[str, object] = {"writes": len(writes), "tok_times": {}}
        server.stats.stream_writes.append(record)
        loop = asyncio.get_running_loop()

        def send(i: int) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            data, tokens = writes[i]
            now = time.monotonic()
            self.transport.write(data)
            times = record["tok_times"]
            assert isinstance(times, dict)
            for tok in tokens:
                times[tok] = now
            if i + 1 < len(writes):
                loop.call_later(gap, send, i + 1)

        send(0)


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    out = bytearray()
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return None
        size = int(bytes(buf[pos:nl]).split(b";", 1)[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", nl)  # optional trailers end with a blank line
            if end < 0:
                return None
            return bytes(out), end + 4
        if len(buf) < nl + 2 + size + 2:
            return None
        out += buf[nl + 2:nl + 2 + size]
        pos = nl + 2 + size + 2


class FakeServer:
    def __init__(self, chunks: int) -> None:
        self.stats = Stats()
        self.openai, self.openai_parts = openai_answers(chunks)
        self.anthropic, self.anthropic_parts = anthropic_answers(chunks)
        self.mode: dict[str, float] = {"writes": 0, "gap_ms": 0.0}

    def _stream(self, whole: bytes, parts: list[bytes]) -> bytes | list[bytes]:
        return parts if self.mode["writes"] else whole

    def answer(self, method: str, path: str, body: bytes) -> bytes | list[bytes]:
        """The response's bytes; a stream's parts (a list) when /_mode asks for several writes."""
        stats = self.stats
        if method == "POST" and path.endswith("/chat/completions"):
            stats.upstream_times.append(time.monotonic())
            if _STREAM_RE.search(body):
                key = "stream_usage" if _USAGE_RE.search(body) is not None else "stream"
                stats.counts["openai_stream"] += 1
                return self._stream(self.openai[key], self.openai_parts[key])
            stats.counts["openai"] += 1
            return self.openai["json"]
        if method == "POST" and path.endswith("/messages"):
            stats.upstream_times.append(time.monotonic())
            if _STREAM_RE.search(body):
                stats.counts["anthropic_stream"] += 1
                return self._stream(self.anthropic["stream"], self.anthropic_parts["stream"])
            stats.counts["anthropic"] += 1
            return self.anthropic["json"]
        if method == "POST" and path == "/_mode":
            mode = json.loads(body or b"{}")
            self.mode = {"writes": int(mode.get("writes", 0)), "gap_ms": float(mode.get("gap_ms", 0.0))}
            return _http("200 OK", "application/json", _dumps(self.mode))
        if path == "/_writes":
            return _http("200 OK", "application/json", _dumps({"streams": list(stats.stream_writes)}))
        if path == "/_stats":
            return _http("200 OK", "application/json", _dumps(stats.snapshot()))
        if path == "/_trace":
            return _http("200 OK", "application/json", _dumps(stats.trace()))
        if path == "/_reset":
            stats.reset()
            return _http("200 OK", "application/json", b"{}")
        if path == "/health":
            return _http("200 OK", "application/json", b'{"status":"ok"}')
        stats.counts["not_found"] += 1
        return NOT_FOUND


# ---- the DynamoDB counting proxy ---------------------------------------------------------------

async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def dynamo_proxy(stats: Stats, target: tuple[str, int]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                                  Awaitable[None]]:
    """Forward HTTP/1.1 requests to DynamoDB Local, recording each call's operation and time."""

    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*target)
        except OSError:
            cwriter.close()
            return
        back = asyncio.ensure_future(_pipe(ureader, cwriter))
        try:
            while True:
                head = await creader.readuntil(b"\r\n\r\n")
                length = 0
                op = "?"
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    lname = name.strip().lower()
                    if lname == b"content-length":
                        length = int(value.strip())
                    elif lname == b"x-amz-target":
                        op = value.strip().decode().rpartition(".")[2]
                body = await creader.readexactly(length) if length else b""
                conditional = b'"ConditionExpression"' in body
                stats.dynamo_calls.append((time.monotonic(), op, conditional))
                stats.counts[f"dynamo_{op}"] += 1
                if conditional:
                    stats.counts[f"dynamo_{op}_conditional"] += 1
                uwriter.write(head + body)
                await uwriter.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            uwriter.close()
            await asyncio.gather(back, return_exceptions=True)

    return handle


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--dynamo-target", default="", help="host:port of DynamoDB Local to proxy and count")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    fake = FakeServer(args.chunks)
    server = await loop.create_server(lambda: FakeHTTP(fake), args.host, args.port, backlog=1024)
    info: dict[str, int] = {"port": server.sockets[0].getsockname()[1]}
    if args.dynamo_target:
        host, _, port = args.dynamo_target.rpartition(":")
        proxy = await asyncio.start_server(dynamo_proxy(fake.stats, (host, int(port))), args.host, 0)
        info["dynamo_port"] = proxy.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
