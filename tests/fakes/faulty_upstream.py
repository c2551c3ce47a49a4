"""A fault-injecting OpenAI chat-completions upstream on loopback (raw HTTP/1.1 over asyncio).

It speaks OpenAI's wire format (JSON answers, SSE streams with `data: [DONE]`, error bodies
`{"error": {"message", "type", "param", "code"}}`, `retry-after` / `retry-after-ms` on 429s)
and is written on bare sockets so that it can do what a well-behaved framework cannot: hang,
stall, drop the TCP connection (RST) mid-body, and notice when the client goes away.

The fault for a request comes from, in order: the `x-fault` request header, else the upstream
model name (the part after `provider/` in the gateway's request: `faulty/503` sends `503`).
A fault spec is words joined by `+`:

    ok              a normal answer (the default for any word it does not know)
    <status>        that HTTP status with an OpenAI error body (e.g. 500, 503, 429, 400)
    ra-<s>          with <status>: the Retry-After in seconds (429 carries 1 s by default)
    hang            never answer; wait for the client to give up (observed as `client_gone`)
    delay-<s>       wait <s> seconds before the first byte, then answer
    gap-<s>         streams: wait <s> seconds between chunks
    words-<n>       answer with <n> words
    stall[-<n>]     streams: send <n> words (default 1; 0: only the role chunk), then nothing, forever
                    (non-streaming: half a JSON body, then nothing)
    cut[-<n>]       the same, but then reset the TCP connection (RST)
    drop            read the request, then close the connection without a response
    eof             streams: end the stream cleanly but without `data: [DONE]`
    midstream       streams: one text delta, then an OpenAI error event
    garbage         200 with a body that is not JSON (streams: SSE events that are not JSON)
    seq-<key>       the next spec from `program(key, [...])` ("fail N times then succeed")
    chaos           a random fault with probability `chaos_rate` (seeded), else ok

Answers follow the shared fake conventions for the last user message ("error:<status>",
"midstream", "length"; otherwise "Hello from fake-<name>: <text>"). Usage is always reported
(in streams as the final usage chunk when asked). Every request is recorded in `requests` as a
`Served` record: model, fault, stream flag, outcome, usage served, and whether the client
went away before the answer was complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultyUpstream", "Served", "running"]

CHAOS_FAULTS_STREAM = ("500", "503", "429+ra-0.05", "drop", "garbage", "hang", "cut", "stall", "eof", "midstream")
CHAOS_FAULTS_PLAIN = ("500", "503", "429+ra-0.05", "drop", "garbage", "hang", "cut", "stall")


@dataclass
class Served:
    """One request as the upstream saw it."""

    model: str
    fault: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]
    t_start: float  # time.monotonic()
    t_end: float | None = None
    outcome: str = "pending"  # ok | error:<status> | hang | stall | cut | drop | eof | midstream | garbage
    complete: bool = False  # the whole answer (ending with [DONE] for streams) was written
    client_gone: bool = False  # the client closed the connection before we were done
    usage: dict[str, Any] | None = None  # usage sent in the answer

    @property
    def text(self) -> str:
        return _last_user_text(self.body)


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c or [] if p.get("type") == "text")
    return ""


@dataclass
class _Spec:
    status: int | None = None
    retry_after: float | None = None
    kind: str = "ok"  # ok | hang | stall | cut | drop | eof | midstream | garbage
    delay: float = 0.0
    gap: float = 0.0
    words: int | None = None
    after: int = 1  # words sent before a stall / cut


def _parse(spec: str) -> _Spec:
    s = _Spec()
    for word in spec.split("+"):
        name, _, arg = word.partition("-")
        if word.isdigit():
            s.status = int(word)
        elif name == "ra" and arg:
            s.retry_after = float(arg)
        elif name == "delay" and arg:
            s.delay = float(arg)
        elif name == "gap" and arg:
            s.gap = float(arg)
        elif name == "words" and arg:
            s.words = int(arg)
        elif name in ("stall", "cut") and arg.isdigit():
            s.kind, s.after = name, int(arg)
        elif word in ("hang", "stall", "cut", "drop", "eof", "midstream", "garbage"):
            s.kind = word
    return s


class _Gone(Exception):
    """The client closed the connection."""


@dataclass
class FaultyUpstream:
    name: str = "faulty"
    key: str | None = None  # when set, requests must carry `authorization: Bearer <key>`
    chaos_rate: float = 0.2
    seed: int = 1234
    requests: list[Served] = field(default_factory=list)
    url: str = ""  # base URL including /v1 once started

    def __post_init__(self) -> None:
        self._programs: dict[str, list[str]] = {}
        self._rng = random.Random(self.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    # ---- control (called from the test thread) ------------------------------------------------

    def program(self, key: str, specs: list[str]) -> None:
        """Requests for `seq-<key>` take these specs in order, then answer ok."""
        with self._lock:
            self._programs[key] = list(specs)

    def served(self, model: str | None = None) -> list[Served]:
        with self._lock:
            return [r for r in self.requests if model is None or r.model == model]

    def count(self, model: str | None = None) -> int:
        return len(self.served(model))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._programs.clear()

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Poll until predicate() is true (the server runs in another thread)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # ---- fault choice -----------------------------------------------------------------------

    def _choose(self, model: str, stream: bool, header: str | None) -> str:
        spec = header or model
        if spec.startswith("seq-"):
            with self._lock:
                queue = self._programs.get(spec[4:], [])
                return queue.pop(0) if queue else "ok"
        if spec == "chaos":
            with self._lock:
                if self._rng.random() < self.chaos_rate:
                    return self._rng.choice(CHAOS_FAULTS_STREAM if stream else CHAOS_FAULTS_PLAIN)
            return "ok"
        return spec

    # ---- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                try:
                    body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                keep = await self._request(method, path, headers, body, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except _Gone:
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _request(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._json(writer, 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error",
                                                     "param": None, "code": "unknown_url"}})
            return True
        try:
            body = json.loads(raw)
        except ValueError:
            await self._json(writer, 400, {"error": {"message": "We could not parse the JSON body of your request.",
                                                     "type": "invalid_request_error", "param": None, "code": None}})
            return True
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        fault = self._choose(model, stream, headers.get("x-fault"))
        rec = Served(model=model, fault=fault, stream=stream, body=body, headers=headers, t_start=time.monotonic())
        with self._lock:
            self.requests.append(rec)
        try:
            return await self._answer(rec, _parse(fault), reader, writer)
        except (_Gone, ConnectionError):
            rec.client_gone = True
            raise _Gone from None
        finally:
            rec.t_end = time.monotonic()

    async def _answer(self, rec: Served, spec: _Spec, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        if self.key is not None and rec.headers.get("authorization") != f"Bearer {self.key}":
            rec.outcome = "error:401"
            await self._json(writer, 401, {"error": {"message": "Incorrect API key provided.",
                                                     "type": "invalid_request_error", "param": None,
                                                     "code": "invalid_api_key"}})
            return True
        text = rec.text
        if spec.kind == "hang":
            rec.outcome = "hang"
            await self._until_gone(reader)
        if spec.delay:
            await self._sleep(reader, spec.delay)
        if spec.kind == "drop":
            rec.outcome = "drop"
            writer.close()
            return False
        status = spec.status
        if status is None and text.startswith("error:") and text[6:].isdigit():
            status = int(text[6:])
        if status is not None and status >= 400:
            rec.outcome = f"error:{status}"
            ra = spec.retry_after if spec.retry_after is not None else (1.0 if status == 429 else None)
            extra = {}
            if ra is not None:
                extra = {"retry-after": str(max(0, int(-(-ra // 1)))), "retry-after-ms": str(int(ra * 1000))}
            kind = "server_error" if status >= 500 else ("rate_limit_exceeded" if status == 429
                                                         else "invalid_request_error")
            code = "rate_limit_exceeded" if status == 429 else None
            await self._json(writer, status, {"error": {"message": f"fake failure {status}", "type": kind,
                                                        "param": None, "code": code}}, extra)
            return True
        if text.startswith("midstream") and spec.kind == "ok":
            spec.kind = "midstream"
        words = self._words(rec, text, spec)
        usage = self._usage(rec.body, len(words))
        if rec.stream:
            return await self._stream(rec, spec, words, usage, text, reader, writer)
        return await self._complete(rec, spec, words, usage, text, reader, writer)

    def _words(self, rec: Served, text: str, spec: _Spec) -> list[str]:
        if spec.words is not None:
            return [f"w{i}" for i in range(spec.words)]
        return f"Hello from fake-{self.name}: {text}".split(" ")

    @staticmethod
    def _usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
        prompt = sum(len(json.dumps(m)) for m in body.get("messages") or []) // 4
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    async def _complete(self, rec: Served, spec: _Spec, words: list[str], usage: dict[str, Any], text: str,
                        reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        finish = "length" if text.startswith("length") else "stop"
        payload = {
            "id": "chatcmpl-faulty", "object": "chat.completion", "created": int(time.time()), "model": rec.model,
            "system_fingerprint": "fp_faulty",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words), "refusal": None,
                                                 "annotations": []}, "logprobs": None, "finish_reason": finish}],
            "usage": usage, "service_tier": "default",
        }
        data = json.dumps(payload).encode()
        if spec.kind == "garbage":
            rec.outcome = "garbage"
            data = b"<html><body>502 Bad Gateway</body></html> {not json"
        if spec.kind in ("cut", "stall"):
            rec.outcome = spec.kind
            writer.write(self._head(200, "application/json", {"content-length": str(len(data))}))
            writer.write(data[: len(data) // 2])
            await writer.drain()
            if spec.kind == "cut":
                writer.transport.abort()
                return False
            await self._until_gone(reader)
        writer.write(self._head(200, "application/json", {"content-length": str(len(data))}) + data)
        await writer.drain()
        if spec.kind != "garbage":
            rec.outcome, rec.usage, rec.complete = "ok", usage, True
        return True

    async def _stream(self, rec: Served, spec: _Spec, words: list[str], usage: dict[str, Any], text: str,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        include = bool((rec.body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-faulty", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": rec.model, "system_fingerprint": "fp_faulty"}
        extra_u = {"usage": None} if include else {}

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
            return ev([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}], **extra_u)

        writer.write(self._head(200, "text/event-stream", {"transfer-encoding": "chunked",
                                                           "cache-control": "no-cache"}))
        if spec.kind == "garbage":
            rec.outcome = "garbage"
            await self._chunk(writer, b"data: {this is not json\n\ndata: <html>oops</html>\n\n")
            await self._chunk(writer, b"")
            return True
        await self._chunk(writer, delta({"role": "assistant", "content": "", "refusal": None}))
        for i, w in enumerate(words):
            if i == spec.after and spec.kind == "cut":
                rec.outcome = "cut"
                writer.transport.abort()
                return False
            if i == spec.after and spec.kind == "stall":
                rec.outcome = "stall"
                await self._until_gone(reader)
            if i and spec.gap:
                await self._sleep(reader, spec.gap)
            await self._chunk(writer, delta({"content": w if i == 0 else " " + w}))
            if i == 0 and spec.kind == "midstream":
                rec.outcome = "midstream"
                err = {"message": "The server had an error while processing your request.",
                       "type": "server_error", "param": None, "code": None}
                await self._chunk(writer, b"data: " + json.dumps({"error": err}).encode() + b"\n\n")
                await self._chunk(writer, b"")
                return True
        finish = "length" if text.startswith("length") else "stop"
        await self._chunk(writer, delta({}, finish))
        if include:
            await self._chunk(writer, ev([], usage=usage))
        if spec.kind == "eof":
            rec.outcome = "eof"
            await self._chunk(writer, b"")
            return True
        await self._chunk(writer, b"data: [DONE]\n\n")
        await self._chunk(writer, b"")
        rec.outcome, rec.complete = "ok", True
        rec.usage = usage if include else None
        return True

    # ---- wire helpers ---------------------------------------------------------------------------

    @staticmethod
    def _head(status: int, ctype: str, extra: dict[str, str]) -> bytes:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {ctype}", "x-request-id: req_faulty"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _json(self, writer: asyncio.StreamWriter, status: int, obj: Any, extra: dict[str, str] | None = None,
                    ) -> None:
        data = json.dumps(obj).encode()
        writer.write(self._head(status, "application/json", {"content-length": str(len(data)), **(extra or {})})
                     + data)
        await writer.drain()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            raise _Gone
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    @staticmethod
    async def _until_gone(reader: asyncio.StreamReader) -> None:
        """Wait (forever) until the client closes the connection, then raise _Gone."""
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                raise _Gone from None
            if not data:
                raise _Gone

    async def _sleep(self, reader: asyncio.StreamReader, seconds: float) -> None:
        """Sleep, but notice (and raise _Gone) if the client leaves meanwhile."""
        try:
            await asyncio.wait_for(self._until_gone(reader), seconds)
        except TimeoutError:
            return

    # ---- lifecycle ------------------------------------------------------------------------------

    async def _serve(self, started: threading.Event, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=1 << 22, backlog=512)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        started.set()
        await stop.wait()
        self._server.close()


@contextlib.contextmanager
def running(upstream: FaultyUpstream | None = None, **kwargs: Any) -> Iterator[FaultyUpstream]:
    """Run a FaultyUpstream in a background thread; yields it with `url` set."""
    fake = upstream or FaultyUpstream(**kwargs)
    started = threading.Event()
    holder: dict[str, Any] = {}

    def main() -> None:
        async def go() -> None:
            holder["stop"] = asyncio.Event()
            await fake._serve(started, holder["stop"])

        asyncio.run(go())

    thread = threading.Thread(target=main, daemon=True, name=f"faulty-{fake.name}")
    thread.start()
    if not started.wait(10):
        raise RuntimeError("faulty upstream did not start")
    try:
        yield fake
    finally:
        loop = fake._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(timeout=5)
