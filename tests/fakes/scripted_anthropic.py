"""A scripted, recording Anthropic Messages server for driving Claude Code (tests/agents.py) offline.

Every request — any method, any path — is recorded in `requests` (method, path, query, headers, JSON
body). `POST /v1/messages` always answers with a STREAMED Messages response (message_start with usage,
content_block_start / content_block_delta / content_block_stop, message_delta with stop_reason and
usage, message_stop), following a two-step script chosen by the conversation's last user/assistant turn
(`role: "system"` messages, which Claude Code interleaves for the models it knows, are skipped):

  last user turn holds a tool_result      → a text answer "<answer_prefix><word>", where <word> is the
                                            first match of `word_pattern` in the tool result's text
                                            (the whole text when nothing matches) — so a test can
                                            assert the agent relayed what it read
  the request offers the `Read` tool      → a `tool_use` block calling Read with
                                            {"file_path": <file_path>}, stop_reason "tool_use"
  ... else offers `exec_command` (Codex)  → a `tool_use` of exec_command {"cmd": "cat <file_path>"}
  anything else (Claude Code's side calls:
  titles, topic checks, quota probes)     → a short text answer `side_answer`

`POST /v1/messages/count_tokens` answers `{"input_tokens": N}`; `GET /v1/models` lists `models`;
HEAD / GET of anything else answers 200 `{}` (connectivity probes); other paths 404 with Anthropic's
error body. A non-stream `POST /v1/messages` is answered with the same script as one JSON message.
`model_calls` lists the recorded /v1/messages requests that were answered by the script's first two
steps (the agent's own turns, not side calls).
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_WORD_PATTERN = r"secret-[0-9a-f]{6,}"


def _text(content: Any) -> str:
    """All text in a content value (string, blocks, nested tool_result content)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(b) for b in content)
    if isinstance(content, dict):
        if content.get("type") == "text":
            return str(content.get("text", ""))
        if content.get("type") == "tool_result":
            return _text(content.get("content", ""))
    return ""


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class ScriptedAnthropic:
    def __init__(self, file_path: str, *, word_pattern: str = DEFAULT_WORD_PATTERN,
                 answer_prefix: str = "The file says: ", side_answer: str = "OK",
                 models: tuple[str, ...] = ("claude-sonnet-4-5",)) -> None:
        self.file_path = file_path
        self.word_pattern = re.compile(word_pattern)
        self.answer_prefix = answer_prefix
        self.side_answer = side_answer
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.model_calls: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []  # what the script decided, one per /v1/messages call
        self.app = Starlette(routes=[
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/{path:path}", self.other, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        ])

    async def _record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = {"method": request.method, "path": request.url.path, "query": request.url.query,
               "headers": dict(request.headers), "body": body}
        self.requests.append(rec)
        return rec

    # ---- the script -----------------------------------------------------------------------------
    def _decide(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str]:
        """→ (kind, content blocks, stop_reason)."""
        # Claude Code puts `role: "system"` messages inside `messages` for the models it knows (the
        # beta mid-conversation-tool-changes-2026-07-01): the turn to answer is the last user/assistant one
        turns = [m for m in body.get("messages") or ()
                 if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        last = turns[-1] if turns else {}
        content = last.get("content") if last.get("role") == "user" else None
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] \
            if isinstance(content, list) else []
        if results:
            text = _text(results[-1].get("content", ""))
            m = self.word_pattern.search(text)
            word = m.group(0) if m else text
            return "answer", [{"type": "text", "text": f"{self.answer_prefix}{word}"}], "end_turn"
        tool_names = {t.get("name") for t in body.get("tools") or () if isinstance(t, dict)}
        if "Read" in tool_names:
            block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": "Read",
                     "input": {"file_path": self.file_path}}
            return "tool_use", [block], "tool_use"
        if "exec_command" in tool_names:  # Codex CLI's shell tool, bridged by the gateway's Responses dialect
            block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": "exec_command",
                     "input": {"cmd": f"cat {shlex.quote(self.file_path)}"}}
            return "tool_use", [block], "tool_use"
        return "side", [{"type": "text", "text": self.side_answer}], "end_turn"

    @staticmethod
    def _usage(body: dict[str, Any]) -> dict[str, int]:
        return {"input_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4),
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}

    def _stream(self, body: dict[str, Any], msg_id: str, blocks: list[dict[str, Any]], stop: str) -> Iterator[str]:
        usage = self._usage(body)
        yield _sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": body.get("model", ""),
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})
        yield _sse("ping", {"type": "ping"})
        out_tokens = 0
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                yield _sse("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}})
                words = re.findall(r"\S+\s*", block["text"]) or [block["text"]]
                for piece in words:
                    out_tokens += 1
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}})
            else:  # tool_use: input streamed as partial JSON in two halves
                yield _sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                args = json.dumps(block["input"])
                for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                    out_tokens += 1
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": i})
        final = dict(usage, output_tokens=max(1, out_tokens))
        yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": final})
        yield _sse("message_stop", {"type": "message_stop"})

    # ---- routes ---------------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        kind, blocks, stop = self._decide(body)
        self.answers.append({"kind": kind, "content": blocks})
        if kind != "side":
            self.model_calls.append(rec)
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        if body.get("stream"):
            return StreamingResponse(self._stream(body, msg_id, blocks, stop), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache", "request-id": "req_" + msg_id[4:]})
        usage = dict(self._usage(body), output_tokens=5)
        return JSONResponse({"id": msg_id, "type": "message", "role": "assistant", "model": body.get("model", ""),
                             "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})

    async def count_tokens(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        return JSONResponse({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    async def list_models(self, request: Request) -> Response:
        await self._record(request)
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in self.models]
        return JSONResponse({"data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def other(self, request: Request) -> Response:
        await self._record(request)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return JSONResponse({})
        return JSONResponse({"type": "error", "error": {"type": "not_found_error",
                                                        "message": f"no route {request.url.path}"}}, status_code=404)
