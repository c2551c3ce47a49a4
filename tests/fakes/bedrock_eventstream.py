"""A fake Amazon Bedrock Runtime behind the REAL boto3 client: event-stream frames and a before-send hook.

botocore emits `before-send.bedrock-runtime.<Operation>` right before it would open a connection;
a handler that returns an `AWSResponse` replaces the network. The request it sees has already been
validated against the service model, serialised and SigV4-signed, and the response it returns goes
through botocore's own parsers: the rest-json parser for `Converse`, and the event-stream decoder
(prelude and message CRC32 checks included) for `ConverseStream`. So the adapter under test runs
exactly the code it runs against AWS.

The AWS event-stream frame (all integers big-endian):

    total length (4) | headers length (4) | CRC32 of those 8 bytes (4)
    headers: name length (1) | name | value type (1, 7 = string) | value length (2) | value
    payload (JSON)
    CRC32 of everything before it (4)

An event has `:message-type event`, `:event-type <member>` (e.g. contentBlockDelta) and
`:content-type application/json`; a modelled exception has `:message-type exception` and
`:exception-type <member>` (e.g. throttlingException).

Behaviour follows the fake-provider conventions (decided by the last message):
  tool results                → "Tool said: <text of the last result>"
  an image                    → "I see an image (<mime>, <N> bytes)"
  "tools2" / "tool"           → two parallel / one toolUse (first offered tools, {"city": "Paris<i>"})
  "json"                      → a forced JSON tool is answered with input {"answer": 42} (text otherwise)
  "error:<status>"            → that HTTP status with Bedrock's error body (429 with retry-after: 1)
  "midstream"                 → one text delta, then a modelStreamErrorException event
  "throttle-stream"           → a throttlingException as the first stream event
  "length"                    → stopReason max_tokens
  "stall"                     → one text delta, then the stream waits until `release()` (or close)
  otherwise                   → "Hello from fake-bedrock: <text>"
Claude rules Bedrock passes on from Anthropic (as ValidationException, "The model returned the following
errors: ..."): with `additionalModelRequestFields.thinking` on, a toolUse answer starts with a signed
`reasoningContent` block (streamed as reasoningContent text + signature deltas); a reasoning block sent
back must keep its signature, and a toolResult turn whose assistant turn does not start with it is refused;
recent Claude models refuse temperature and topP together.
Usage always carries a nonzero cacheReadInputTokens; cacheWriteInputTokens (and cacheDetails) are nonzero
when the request has cachePoint blocks. Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import struct
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

from tests.fakes.embeddings import bedrock_invoke

__all__ = ["FakeBedrock", "encode_frame", "event_frame", "exception_frame", "mime_of"]

# ---- the frame encoder ---------------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    n = name.encode()
    v = value.encode()
    return struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_frame({":event-type": event_type, ":content-type": "application/json",
                         ":message-type": "event"}, json.dumps(payload).encode())


_event_frame = event_frame


def exception_frame(exception_type: str, payload: dict[str, Any]) -> bytes:
    return encode_frame({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps(payload).encode())


# ---- the raw body botocore reads -------------------------------------------------------------


class _Raw:
    """What botocore expects of `AWSResponse.raw` (a urllib3 response): stream() and close()."""

    def __init__(self, pieces: Iterator[bytes], fake: FakeBedrock) -> None:
        self._pieces = pieces
        self._fake = fake
        self.closed = False

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        for piece in self._pieces:
            if self.closed:
                return
            yield piece

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b"".join(self.stream())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._fake.closed_streams += 1
            self._fake._wake.set()


_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

_ERROR_MESSAGES = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "AccessDeniedException": "User: arn:aws:sts::123456789012:assumed-role/secret-role/fn is not authorized "
                             "to perform: bedrock:InvokeModel",
    "ValidationException": "The provided model identifier is invalid.",
    "ResourceNotFoundException": "Model not found.",
}


THINKING_TEXT = "I should call the tool to answer this."
CACHE_WRITE = 4
_THINKING_RULE = ("The model returned the following errors: messages.{i}.content.0.type: Expected `thinking` or "
                  "`redacted_thinking`, but found `{found}`. When `thinking` is enabled, a final `assistant` message "
                  "must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                  "blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, "
                  "disable `thinking`. Please consult our documentation at "
                  "https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
_BOTH_SAMPLERS = ("The model returned the following errors: `temperature` and `top_p` cannot both be specified for "
                  "this model. Please use only one.")


def sign(text: str) -> str:
    return base64.b64encode(hashlib.sha256(b"fake-bedrock:" + text.encode()).digest()).decode()


def _thinking_on(body: dict[str, Any]) -> bool:
    t = (body.get("additionalModelRequestFields") or {}).get("thinking")
    return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")


def _block_kind(block: dict[str, Any]) -> str:
    names = {"reasoningContent": "thinking", "toolUse": "tool_use", "toolResult": "tool_result"}
    return next((names.get(k, k) for k in block), "empty")


def claude_rule_error(model: str, body: dict[str, Any]) -> str | None:
    """The Anthropic rule a Claude request on Bedrock breaks, as Bedrock words it (None: fine)."""
    if "claude" not in model:
        return None
    inference = body.get("inferenceConfig") or {}
    old = "claude-3" in model or "-4-2025" in model
    if not old and "temperature" in inference and "topP" in inference:
        return _BOTH_SAMPLERS
    msgs = body.get("messages") or []
    for i, msg in enumerate(msgs):
        for j, b in enumerate(msg.get("content") or ()):
            text = (b.get("reasoningContent") or {}).get("reasoningText")
            if isinstance(text, dict) and text.get("signature") != sign(str(text.get("text", ""))):
                return f"The model returned the following errors: messages.{i}.content.{j}: Invalid `signature` " \
                       "in `thinking` block"
    if _thinking_on(body) and len(msgs) >= 2:
        last, prev = msgs[-1], msgs[-2]
        if last["role"] == "user" and any("toolResult" in b for b in last["content"]) and prev["role"] == "assistant":
            first = (prev.get("content") or [{}])[0]
            if "reasoningContent" not in first:
                return _THINKING_RULE.format(i=len(msgs) - 2, found=_block_kind(first))
    return None


def _has_cache_point(body: dict[str, Any]) -> bool:
    blocks = [*(body.get("system") or ()), *((body.get("toolConfig") or {}).get("tools") or ())]
    blocks += [b for m in body.get("messages") or () for b in m.get("content") or ()]
    return any("cachePoint" in b for b in blocks)


def mime_of(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class FakeBedrock:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.closed_streams = 0
        self.stalled = threading.Event()  # set while a "stall" stream is waiting
        self._wake = threading.Event()
        self._lock = threading.Lock()

    # ---- wiring ---------------------------------------------------------------------------------

    def install(self, client: Any) -> None:
        """Answer this boto3 bedrock-runtime client's Converse / ConverseStream calls."""
        events = client.meta.events
        for op, handler in (("Converse", self._converse), ("ConverseStream", self._converse_stream),
                            ("InvokeModel", self._invoke_embeddings)):
            name = f"before-send.bedrock-runtime.{op}"
            events.unregister(name, unique_id=f"fake-bedrock-{op}")  # a newer fake replaces an older one
            events.register(name, handler, unique_id=f"fake-bedrock-{op}")

    def release(self) -> None:
        self._wake.set()

    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    # ---- the hooks ------------------------------------------------------------------------------

    def _record(self, request: Any, operation: str) -> dict[str, Any]:
        body = json.loads(request.body) if request.body else {}
        path = urlsplit(request.url).path  # /model/<id>/converse[-stream]
        model_id = unquote(path.split("/")[2])
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        rec = {"operation": operation, "model": model_id, "body": body, "headers": headers, "url": request.url}
        with self._lock:
            self.requests.append(rec)
        return rec

    def _converse(self, request: Any, **kwargs: Any) -> AWSResponse:
        rec = self._record(request, "Converse")
        err = self._http_error(request, rec["body"]) or self._rule_error(request, rec)
        if err is not None:
            return err
        blocks, stop = self._answer(rec["body"])
        out = {
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop,
            "usage": self._usage(rec["body"]),
            "metrics": {"latencyMs": 12},
        }
        return self._response(request, 200, {"content-type": "application/json"}, iter([json.dumps(out).encode()]))

    def _invoke_embeddings(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        """InvokeModel for Titan / Cohere embeddings (tests/fakes/embeddings.py); None (not answered
        here) for other models."""
        model_id = unquote(urlsplit(request.url).path.split("/")[2])
        body = json.loads(request.body) if request.body else {}
        answer = bedrock_invoke(model_id, body)
        if answer is None:
            return None
        self._record(request, "InvokeModel")
        status, headers, payload = answer
        raw = json.dumps(payload).encode()
        return self._response(request, status, {"content-type": "application/json",
                                                "content-length": str(len(raw)), **headers}, iter([raw]))

    def _converse_stream(self, request: Any, **kwargs: Any) -> AWSResponse:
        rec = self._record(request, "ConverseStream")
        err = self._http_error(request, rec["body"]) or self._rule_error(request, rec)
        if err is not None:
            return err
        return self._response(request, 200, {"content-type": "application/vnd.amazon.eventstream"},
                              self._frames(rec["body"]))

    # ---- answers --------------------------------------------------------------------------------

    def _response(self, request: Any, status: int, headers: dict[str, str], pieces: Iterator[bytes]) -> AWSResponse:
        headers = {"x-amzn-requestid": "fake-request-id", **headers}
        return AWSResponse(request.url, status, headers, _Raw(pieces, self))

    def _http_error(self, request: Any, body: dict[str, Any]) -> AWSResponse | None:
        text = _last_user_text(body)
        if not text.startswith("error:"):
            return None
        status = int(text.split(":", 1)[1].split()[0])
        etype = _ERROR_TYPES.get(status, "InternalServerException")
        headers = {"content-type": "application/json",
                   "x-amzn-errortype": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        if status == 429:
            headers["retry-after"] = "1"
        payload = {"message": _ERROR_MESSAGES.get(etype, f"fake failure {status}")}
        return self._response(request, status, headers, iter([json.dumps(payload).encode()]))

    def _rule_error(self, request: Any, rec: dict[str, Any]) -> AWSResponse | None:
        message = claude_rule_error(rec["model"], rec["body"])
        if message is None:
            return None
        headers = {"content-type": "application/json",
                   "x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return self._response(request, 400, headers, iter([json.dumps({"message": message}).encode()]))

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
        cached, output = 3, 7
        written = CACHE_WRITE if _has_cache_point(body) else 0
        usage: dict[str, Any] = {"inputTokens": prompt, "outputTokens": output, "cacheReadInputTokens": cached,
                                 "cacheWriteInputTokens": written, "totalTokens": prompt + output + cached + written}
        if written:
            usage["cacheDetails"] = [{"ttl": "5m", "inputTokens": written}]
        return usage

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The assistant content blocks and stopReason the conventions call for."""
        messages = body.get("messages") or []
        last = messages[-1] if messages else {"role": "user", "content": []}
        results = [b["toolResult"] for b in last.get("content", []) if "toolResult" in b]
        if last.get("role") == "user" and results:
            result = results[-1]
            text = "".join(c.get("text", "") if "text" in c else json.dumps(c.get("json")) for c in result["content"])
            return [{"text": f"Tool said: {text}"}], "end_turn"
        for block in last.get("content", []):
            if "image" in block:
                source = block["image"]["source"]
                data = base64.b64decode(source["bytes"]) if "bytes" in source else b""
                fmt = block["image"]["format"]
                return [{"text": f"I see an image (image/{fmt}, {len(data)} bytes)"}], "end_turn"
        text = _last_user_text(body)
        tool_config = body.get("toolConfig") or {}
        tools = [t["toolSpec"] for t in tool_config.get("tools", []) if "toolSpec" in t]
        forced = (tool_config.get("toolChoice") or {}).get("tool", {}).get("name")
        if text.startswith("length"):
            return [{"text": "Truncated answer"}], "max_tokens"
        if text.startswith("json"):
            if forced:
                return [{"toolUse": {"toolUseId": "tooluse_json0", "name": forced, "input": {"answer": 42}}}], \
                    "tool_use"
            return [{"text": json.dumps({"answer": 42})}], "end_turn"
        if text.startswith("tool") and tools:
            n = 2 if text.startswith("tools2") else 1
            blocks: list[dict[str, Any]] = [{"text": "Let me check."}]
            for i in range(n):
                name = tools[min(i, len(tools) - 1)]["name"]
                blocks.append({"toolUse": {"toolUseId": f"tooluse_fake{i}", "name": name,
                                           "input": {"city": f"Paris{i}"}}})
            if _thinking_on(body):  # a signed reasoning block opens the turn
                blocks.insert(0, {"reasoningContent": {"reasoningText": {"text": THINKING_TEXT,
                                                                         "signature": sign(THINKING_TEXT)}}})
            return blocks, "tool_use"
        return [{"text": f"Hello from fake-bedrock: {text}"}], "end_turn"

    def _frames(self, body: dict[str, Any]) -> Iterator[bytes]:
        # Bedrock pads every event with a "p" field of varying length (against length side channels)
        pad = itertools.cycle("abcdefghijklmnopqrstuvwxyz0123456789")

        def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
            return _event_frame(event_type, {**payload, "p": "".join(next(pad) for _ in range(7))})

        text = _last_user_text(body)
        if text.startswith("throttle-stream"):
            yield exception_frame("throttlingException", {"message": "Too many requests, please wait."})
            return
        yield event_frame("messageStart", {"role": "assistant"})
        if text.startswith("midstream"):
            yield event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "partial"}})
            yield exception_frame("modelStreamErrorException", {
                "message": "The model stream failed.", "originalStatusCode": 500,
                "originalMessage": "internal model error"})
            return
        if text.startswith("stall"):
            yield event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "waiting"}})
            self._wake.clear()
            self.stalled.set()
            self._wake.wait(30)
            self.stalled.clear()
            yield event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " done"}})
            yield event_frame("contentBlockStop", {"contentBlockIndex": 0})
            yield event_frame("messageStop", {"stopReason": "end_turn"})
            yield event_frame("metadata", {"usage": self._usage(body), "metrics": {"latencyMs": 5}})
            return
        blocks, stop = self._answer(body)
        for index, block in enumerate(blocks):
            if "reasoningContent" in block:
                rt = block["reasoningContent"]["reasoningText"]
                half = len(rt["text"]) // 2
                for piece in (rt["text"][:half], rt["text"][half:]):
                    yield event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                            "delta": {"reasoningContent": {"text": piece}}})
                yield event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                        "delta": {"reasoningContent": {"signature": rt["signature"]}}})
            elif "text" in block:
                words = block["text"].split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    yield event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
            else:
                use = block["toolUse"]
                yield event_frame("contentBlockStart", {"contentBlockIndex": index, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}})
                args = json.dumps(use["input"])
                for j in range(0, len(args), 5):
                    yield event_frame("contentBlockDelta", {"contentBlockIndex": index,
                                                            "delta": {"toolUse": {"input": args[j:j + 5]}}})
            yield event_frame("contentBlockStop", {"contentBlockIndex": index})
        yield event_frame("messageStop", {"stopReason": stop})
        # metadata (usage) comes after messageStop, as on Bedrock
        yield event_frame("metadata", {"usage": self._usage(body), "metrics": {"latencyMs": 9}})


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            texts = [b["text"] for b in msg.get("content", []) if "text" in b]
            if texts:
                return " ".join(texts)
    return ""
