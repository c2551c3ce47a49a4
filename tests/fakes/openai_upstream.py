"""A fake OpenAI chat completions server speaking the real wire format (JSON and SSE).

Behaviour is chosen by the last message, so tests drive it through any client:
  a tool result   → "Tool said: <result>"
  an image        → "I see an image (<mime>, <N> bytes)"
  "length"        → finish_reason "length"
  "tool"          → one tool call (the first tool the request offers)
  "tools2"        → two parallel tool calls
  "json"          → a JSON object as content
  "error:<code>"  → that HTTP status with an OpenAI error body
  "midstream"     → a stream that sends an error event after one chunk
  anything else   → "Hello from fake-openai: <text>"
Every request is recorded in `FakeOpenAI.requests` (body and headers) for assertions.
POST /v1/responses speaks the Responses API (tests/fakes/openai_responses.py).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.embeddings import openai_embeddings
from tests.fakes.openai_responses import responses_endpoint


class JSONResponse(_StarletteJSON):
    """Like OpenAI's servers, escape non-ASCII (so lone surrogates survive as \\u escapes)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content).encode()


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


class FakeOpenAI:
    def __init__(self, key: str = "sk-upstream-test") -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []  # POST /v1/embeddings (tests/fakes/embeddings.py)
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                     Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                                     Route("/v1/responses", self.responses, methods=["POST"])])

    async def responses(self, request: Request) -> Response:
        """The Responses API (tests/fakes/openai_responses.py)."""
        return await responses_endpoint(self, request)

    async def embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.embedding_requests.append({"body": body, "headers": dict(request.headers)})
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided: sk-up***", "type":
                                 "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)
        status, payload = openai_embeddings(body)
        return JSONResponse(payload, status)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided: sk-up***", "type":
                                 "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)
        text = _last_user_text(body)
        if text.startswith("error:"):
            status = int(text.split(":", 1)[1])
            headers = {"retry-after": "1"} if status == 429 else {}
            return JSONResponse({"error": {"message": f"fake failure {status}", "type": "server_error"
                                           if status >= 500 else "invalid_request_error", "param": None,
                                           "code": None}}, status, headers=headers)
        try:
            content, tool_calls, finish = self._answer(body, text)
        except (ValueError, IndexError):  # like OpenAI: a data URL that is not base64 is the caller's error
            return JSONResponse({"error": {"message": "Invalid base64 image_url.", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_image_url"}}, 400)
        prompt_tokens = sum(len(json.dumps(m)) for m in body["messages"]) // 4
        completion_tokens = 7
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(body, content, tool_calls, finish, usage, include, text),
                                     media_type="text/event-stream")
        msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        if tool_calls:
            msg["tool_calls"] = tool_calls
        return JSONResponse({
            "id": "chatcmpl-fake123", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
            "usage": usage, "service_tier": "default",
        })

    def _answer(self, body: dict[str, Any], text: str) -> tuple[str | None, list[dict[str, Any]], str]:
        last = body["messages"][-1]
        if last.get("role") == "tool":
            c = last.get("content")
            result = c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
            return f"Tool said: {result}", [], "stop"
        if isinstance(last.get("content"), list):
            for part in last["content"]:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    if url.startswith("data:"):
                        mime = url[5:].split(";", 1)[0]
                        size = len(base64.b64decode(url.split(",", 1)[1]))
                        return f"I see an image ({mime}, {size} bytes)", [], "stop"
                    return f"I see an image (url, {url})", [], "stop"
        if text.startswith("length"):
            return "Truncated answer", [], "length"
        tools = body.get("tools") or []
        if text.startswith("tool") and tools:
            n = 2 if text.startswith("tools2") else 1
            calls = []
            for i in range(n):
                name = tools[min(i, len(tools) - 1)]["function"]["name"]
                calls.append({"id": f"call_fake{i}", "type": "function",
                              "function": {"name": name, "arguments": json.dumps({"city": f"Paris{i}"})}})
            return None, calls, "tool_calls"
        if text.startswith("json"):
            return json.dumps({"answer": 42}), [], "stop"
        return f"Hello from fake-openai: {text}", [], "stop"

    async def _stream(self, body: dict[str, Any], content: str | None, tool_calls: list[dict[str, Any]],
                      finish: str, usage: dict[str, Any], include_usage: bool, text: str):  # type: ignore[no-untyped-def]
        base = {"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"], "system_fingerprint": "fp_fake"}

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        extra_u = {"usage": None} if include_usage else {}
        yield ev([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                   "logprobs": None, "finish_reason": None}], **extra_u)
        if text.startswith("midstream"):
            yield ev([{"index": 0, "delta": {"content": "partial"}, "logprobs": None, "finish_reason": None}])
            err = {"message": "The server had an error while processing your request.", "type": "server_error",
                   "param": None, "code": None}
            yield f"data: {json.dumps({'error': err})}\n\n".encode()
            return
        if content:
            words = content.split(" ")
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                yield ev([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
                         **extra_u)
        for i, call in enumerate(tool_calls):
            yield ev([{"index": 0, "delta": {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}}]},
                       "logprobs": None, "finish_reason": None}], **extra_u)
            args = call["function"]["arguments"]
            for j in range(0, len(args), 5):
                yield ev([{"index": 0, "delta": {"tool_calls": [{"index": i, "function":
                           {"arguments": args[j:j + 5]}}]}, "logprobs": None, "finish_reason": None}], **extra_u)
        yield ev([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}], **extra_u)
        if include_usage:
            yield ev([], usage=usage)
        yield b"data: [DONE]\n\n"
