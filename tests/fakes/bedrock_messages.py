"""Claude on a fake Bedrock: InvokeModel / InvokeModelWithResponseStream with Anthropic Messages bodies,
answered from botocore's before-send hook of the REAL boto3 client (as tests/fakes/bedrock_eventstream.py).

Bedrock's rules for a Messages body: `anthropic_version: "bedrock-2023-05-31"` is required, the model
is in the URL (a `model` or `stream` key in the body is a ValidationException), `anthropic_beta` is a
list; otherwise Anthropic's own rules apply (tests/fakes/anthropic_upstream.py's validation, thinking
signatures included). The answer follows that fake's conventions ("Hello from fake-anthropic: <text>",
"tool" -> a tool_use, thinking on -> a signed thinking block first). The stream is event-stream frames
whose `:event-type` is `chunk` and whose payload is {"bytes": <base64 of one Anthropic stream event>};
the last event (message_stop) carries `amazon-bedrock-invocationMetrics`, as on Bedrock.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

from tests.fakes.anthropic_upstream import (
    THINKING_TEXT,
    FakeAnthropic,
    Invalid,
    _check_thinking,
    _text_of,
    _thinking_on,
    _validate,
    sign,
)
from tests.fakes.bedrock_eventstream import _Raw, event_frame

__all__ = ["FakeBedrockMessages"]


class FakeBedrockMessages:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.closed_streams = 0
        self._wake = threading.Event()
        self._answers = FakeAnthropic()

    def install(self, client: Any) -> None:
        events = client.meta.events
        for op, handler in (("InvokeModel", self._invoke), ("InvokeModelWithResponseStream", self._invoke_stream)):
            name = f"before-send.bedrock-runtime.{op}"
            events.unregister(name, unique_id=f"fake-bedrock-messages-{op}")
            events.register(name, handler, unique_id=f"fake-bedrock-messages-{op}")

    # ---- hooks ----------------------------------------------------------------------------------
    def _record(self, request: Any, operation: str) -> dict[str, Any] | None:
        model_id = unquote(urlsplit(request.url).path.split("/")[2])
        if "anthropic" not in model_id:
            return None  # not a Claude model: another hook (embeddings) answers
        body = json.loads(request.body) if request.body else {}
        rec = {"operation": operation, "model": model_id, "body": body, "headers": dict(request.headers)}
        self.requests.append(rec)
        return rec

    def _error(self, request: Any, status: int, etype: str, message: str) -> AWSResponse:
        headers = {"content-type": "application/json",
                   "x-amzn-errortype": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        raw = json.dumps({"message": message}).encode()
        return AWSResponse(request.url, status, headers, _Raw(iter([raw]), self))

    def _decide(self, request: Any,
                rec: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, int]] | AWSResponse:
        body = rec["body"]
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            return self._error(request, 400, "ValidationException", "anthropic_version: required key missing")
        for key in ("model", "stream"):
            if key in body:
                return self._error(request, 400, "ValidationException", f"extraneous key [{key}] is not permitted")
        if "anthropic_beta" in body and not isinstance(body["anthropic_beta"], list):
            return self._error(request, 400, "ValidationException", "anthropic_beta: expected a list")
        try:
            _validate({**body, "model": rec["model"]})
            _check_thinking(body)
        except Invalid as exc:
            return self._error(request, 400, "ValidationException", str(exc))
        last = [m for m in body["messages"] if m.get("role") != "system"][-1]
        text = _text_of(last["content"]) if last["role"] == "user" else ""
        if text.startswith("error:429"):
            return self._error(request, 429, "ThrottlingException", "Too many requests, please wait.")
        content, stop = self._answers._answer(body, last, text)
        if _thinking_on(body) and stop == "tool_use":
            content = [{"type": "thinking", "thinking": THINKING_TEXT, "signature": sign(THINKING_TEXT)}, *content]
        usage = {"input_tokens": len(json.dumps(body["messages"])) // 4, "cache_creation_input_tokens": 2,
                 "cache_read_input_tokens": 3, "output_tokens": sum(len(json.dumps(b)) for b in content) // 4 + 1}
        return content, stop, usage

    def _invoke(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        rec = self._record(request, "InvokeModel")
        if rec is None:
            return None
        decided = self._decide(request, rec)
        if isinstance(decided, AWSResponse):
            return decided
        content, stop, usage = decided
        out = {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": rec["model"],
               "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        raw = json.dumps(out).encode()
        return AWSResponse(request.url, 200, {"content-type": "application/json", "content-length": str(len(raw)),
                                              "x-amzn-requestid": "fake-request-id"}, _Raw(iter([raw]), self))

    def _invoke_stream(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        rec = self._record(request, "InvokeModelWithResponseStream")
        if rec is None:
            return None
        decided = self._decide(request, rec)
        if isinstance(decided, AWSResponse):
            return decided
        content, stop, usage = decided
        frames = (event_frame("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()})
                  for e in _events(rec["model"], content, stop, usage))
        return AWSResponse(request.url, 200, {"content-type": "application/vnd.amazon.eventstream",
                                              "x-amzn-requestid": "fake-request-id"}, _Raw(frames, self))


def _events(model: str, content: list[dict[str, Any]], stop: str, usage: dict[str, int]) -> Iterator[dict[str, Any]]:
    start_usage = {**usage, "output_tokens": 1}
    yield {"type": "message_start", "message": {"id": "msg_bdrk_01", "type": "message", "role": "assistant",
                                                "model": model, "content": [], "stop_reason": None,
                                                "stop_sequence": None, "usage": start_usage}}
    for i, block in enumerate(content):
        kind = block["type"]
        if kind == "thinking":
            yield {"type": "content_block_start", "index": i,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            yield {"type": "content_block_delta", "index": i,
                   "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}
            yield {"type": "content_block_delta", "index": i,
                   "delta": {"type": "signature_delta", "signature": block["signature"]}}
        elif kind == "text":
            yield {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
            for word in block["text"].split(" "):
                yield {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": word + " "}}
        else:
            yield {"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}
            args = json.dumps(block["input"])
            for j in range(0, len(args), 7):
                yield {"type": "content_block_delta", "index": i,
                       "delta": {"type": "input_json_delta", "partial_json": args[j:j + 7]}}
        yield {"type": "content_block_stop", "index": i}
    yield {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
           "usage": {"output_tokens": usage["output_tokens"]}}
    yield {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": usage["input_tokens"], "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 42, "firstByteLatency": 7}}
