"""A scripted, recording OpenAI-compatible chat completions server, for driving a coding agent through a
bridged (translated) model: the counterpart of tests/fakes/scripted_anthropic.py.

`POST /v1/chat/completions` (streamed or not, in the real wire format; a usage chunk when
`stream_options.include_usage` is set) follows a two-step script chosen by the conversation's end:

  the last message is a `tool` result       → the text "<answer_prefix><word>", where <word> is the first
                                              match of `word_pattern` in the result (the whole text when
                                              nothing matches)
  the request offers a `Read` function      → one tool call Read {"file_path": <file_path>}, finish_reason
                                              "tool_calls"
  anything else (side calls)                → the text `side_answer`

It checks the bearer key and the chat rules a real server enforces (messages present, each tool
message answering a tool call of the assistant message before it). Every request is recorded in
`requests`; `model_calls` holds the agent's own turns (not side calls); `answers` what was decided.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.scripted_anthropic import DEFAULT_WORD_PATTERN

__all__ = ["ScriptedChat"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _error(status: int, message: str, etype: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": etype, "param": None, "code": None}}, status)


class ScriptedChat:
    def __init__(self, file_path: str, key: str, *, word_pattern: str = DEFAULT_WORD_PATTERN,
                 answer_prefix: str = "The file says: ", side_answer: str = "OK") -> None:
        self.file_path = file_path
        self.key = key
        self.word_pattern = re.compile(word_pattern)
        self.answer_prefix = answer_prefix
        self.side_answer = side_answer
        self.requests: list[dict[str, Any]] = []
        self.model_calls: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    def _decide(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """→ (kind, the assistant message, finish_reason)."""
        last = body["messages"][-1]
        if last.get("role") == "tool":
            text = _text(last.get("content"))
            m = self.word_pattern.search(text)
            word = m.group(0) if m else text
            return "answer", {"role": "assistant", "content": f"{self.answer_prefix}{word}"}, "stop"
        names = {(t.get("function") or {}).get("name") for t in body.get("tools") or ()}
        if "Read" in names:
            call = {"id": "call_" + uuid.uuid4().hex[:20], "type": "function",
                    "function": {"name": "Read", "arguments": json.dumps({"file_path": self.file_path})}}
            return "tool_use", {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        return "side", {"role": "assistant", "content": self.side_answer}, "stop"

    @staticmethod
    def _check(body: dict[str, Any]) -> str | None:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "'messages' must be a non-empty array"
        open_calls: set[str] = set()
        for i, m in enumerate(msgs):
            if m.get("role") == "tool":
                if m.get("tool_call_id") not in open_calls:
                    return (f"Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                            f"message with 'tool_calls' (messages[{i}]).")
            elif m.get("role") == "assistant":
                open_calls = {c["id"] for c in m.get("tool_calls") or ()}
            elif m.get("role") == "user":
                open_calls = set()
        return None

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        rec = {"path": request.url.path, "headers": dict(request.headers), "body": body}
        self.requests.append(rec)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        problem = self._check(body)
        if problem:
            return _error(400, problem)
        kind, message, finish = self._decide(body)
        self.answers.append({"kind": kind, "message": message})
        if kind != "side":
            self.model_calls.append(rec)
        prompt = max(1, len(json.dumps(body["messages"])) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": 9, "total_tokens": prompt + 9,
                 "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:20], int(time.time())
        if body.get("stream"):
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._stream(cid, created, body["model"], message, finish,
                                                  usage if wants_usage else None), media_type="text/event-stream")
        return JSONResponse({"id": cid, "object": "chat.completion", "created": created, "model": body["model"],
                             "choices": [{"index": 0, "message": {**message, "refusal": None}, "logprobs": None,
                                          "finish_reason": finish}], "usage": usage})

    @staticmethod
    def _stream(cid: str, created: int, model: str, message: dict[str, Any], finish: str,
                usage: dict[str, Any] | None) -> Iterator[str]:
        def ev(choices: list[dict[str, Any]], **extra: Any) -> str:
            return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                          "model": model, "choices": choices, **extra}) + "\n\n"

        def delta(d: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": reason}]

        yield ev(delta({"role": "assistant", "content": ""}))
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            args = call["function"]["arguments"]
            yield ev(delta({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                            "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                yield ev(delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            for piece in re.findall(r"\S+\s*", message["content"]):
                yield ev(delta({"content": piece}))
        yield ev(delta({}, finish))
        if usage is not None:
            yield ev([], usage=usage)
        yield "data: [DONE]\n\n"
