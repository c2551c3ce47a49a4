"""A scripted, recording OpenAI Responses server for driving the Codex CLI (tests/agents.py) offline.

Every request — any method, any path — is recorded in `requests` (method, path, query, headers, JSON
body). `POST /v1/responses` answers with a STREAMED response (OpenAI's documented Responses stream:
response.created, response.in_progress, response.output_item.added, then for a function call
response.function_call_arguments.delta / .done, for a message response.content_part.added,
response.output_text.delta / .done, response.content_part.done; then response.output_item.done and
response.completed with usage — every event with its `sequence_number`), following a two-step script:

  the input ends with a function_call_output
  or a custom_tool_call_output                → an assistant message "<answer_prefix><word>", where <word>
                                               is the first match of `word_pattern` in that output
                                               (the whole output when nothing matches)
  the request offers a shell tool             → a `function_call` that runs `cat <file_path>`, shaped
                                               for the tool offered: `exec_command` {"cmd": "cat …"},
                                               `shell_command` {"command": "cat …"} or `shell`
                                               {"command": ["cat", …]}
  Codex's code mode (a freeform `exec` tool,  → a `custom_tool_call` of `exec` whose JavaScript runs
  maybe inside an `additional_tools` item)      `tools.exec_command({"cmd": "cat …"})` and `text()`s it
                                               (events response.custom_tool_call_input.delta / .done)
  anything else                               → a message `side_answer`

A request without `stream: true` gets the same script as one JSON Response object. `GET /v1/models`
lists `models`; HEAD / GET of anything else answers 200 `{}`; other paths 404 with OpenAI's error body.
`model_calls` lists the /v1/responses requests answered by the script's first two steps.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_WORD_PATTERN = r"secret-[0-9a-f]{6,}"
SHELL_TOOLS = ("exec_command", "shell_command", "shell")


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # content items: [{"type": "input_text", "text": ...}]
        return "\n".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    return json.dumps(output)


def _offered_tools(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    """(name, type) → {"namespace": ...} or {} for every tool in `tools` and in `additional_tools` input
    items (Codex's code mode), namespaces flattened."""
    found: dict[tuple[str, str], dict[str, str]] = {}

    def walk(tools: Any, namespace: str | None) -> None:
        for t in tools if isinstance(tools, list) else ():
            if not isinstance(t, dict):
                continue
            if t.get("type") == "namespace":
                walk(t.get("tools"), t.get("name"))
            elif t.get("name"):
                found.setdefault((t["name"], t.get("type", "function")), {"namespace": namespace} if namespace else {})

    walk(body.get("tools"), None)
    for item in body.get("input") if isinstance(body.get("input"), list) else ():
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            walk(item.get("tools"), None)
    return found


class ScriptedResponses:
    def __init__(self, file_path: str, *, word_pattern: str = DEFAULT_WORD_PATTERN,
                 answer_prefix: str = "The file says: ", side_answer: str = "OK",
                 models: tuple[str, ...] = ("gpt-5",)) -> None:
        self.file_path = file_path
        self.word_pattern = re.compile(word_pattern)
        self.answer_prefix = answer_prefix
        self.side_answer = side_answer
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.model_calls: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []  # the output item the script chose, one per /v1/responses call
        self.app = Starlette(routes=[
            Route("/v1/responses", self.responses, methods=["POST"]),
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
    def _decide(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """→ (kind, the finished output item)."""
        items = body.get("input")
        items = items if isinstance(items, list) else []
        # the last item that is not a reasoning item / developer note decides
        last = next((i for i in reversed(items) if isinstance(i, dict) and i.get("type") != "reasoning"), {})
        if last.get("type") in ("function_call_output", "custom_tool_call_output"):
            text = _output_text(last.get("output"))
            m = self.word_pattern.search(text)
            return "answer", self._message(f"{self.answer_prefix}{m.group(0) if m else text}")
        offered = _offered_tools(body)
        name = next((n for n in SHELL_TOOLS if (n, "function") in offered), None)
        if name is not None:
            cmd = f"cat {shlex.quote(self.file_path)}"
            args = {"exec_command": {"cmd": cmd}, "shell_command": {"command": cmd},
                    "shell": {"command": ["cat", self.file_path]}}[name]
            return "function_call", {"id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": "completed",
                                     "arguments": json.dumps(args), "call_id": "call_" + uuid.uuid4().hex[:24],
                                     "name": name, **offered[(name, "function")]}
        if ("exec", "custom") in offered:  # Codex "code mode": JavaScript that calls the nested exec_command
            args = json.dumps({"cmd": "cat " + shlex.quote(self.file_path)})
            source = f"const r = await tools.exec_command({args});\ntext(r);\n"
            return "custom_tool_call", {"id": "ctc_" + uuid.uuid4().hex, "type": "custom_tool_call",
                                        "status": "completed", "call_id": "call_" + uuid.uuid4().hex[:24],
                                        "name": "exec", "input": source, **offered[("exec", "custom")]}
        return "side", self._message(self.side_answer)

    @staticmethod
    def _message(text: str) -> dict[str, Any]:
        return {"id": "msg_" + uuid.uuid4().hex, "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}

    @staticmethod
    def _usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
        inp = max(1, len(json.dumps(body.get("input", []))) // 4)
        return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": inp + output_tokens}

    @staticmethod
    def _response(body: dict[str, Any], resp_id: str, created: int, status: str, output: list[dict[str, Any]],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": resp_id, "object": "response", "created_at": created, "status": status,
                "completed_at": int(time.time()) if status == "completed" else None, "background": False,
                "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": body.get("model", ""),
                "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": None, "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
                "service_tier": "default", "store": body.get("store", True), "temperature": 1.0,
                "text": body.get("text") or {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools", []), "top_p": 1.0, "truncation": "disabled", "usage": usage,
                "user": None, "metadata": body.get("metadata") or {}}

    def _events(self, body: dict[str, Any], resp_id: str, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        created = int(time.time())
        for kind in ("response.created", "response.in_progress"):
            yield {"type": kind, "response": self._response(body, resp_id, created, "in_progress", [], None)}
        item_id = item["id"]
        pieces = 0
        if item["type"] == "function_call":
            yield {"type": "response.output_item.added", "output_index": 0,
                   "item": dict(item, status="in_progress", arguments="")}
            args = item["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                pieces += 1
                yield {"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": 0,
                       "delta": piece}
            yield {"type": "response.function_call_arguments.done", "item_id": item_id, "name": item["name"],
                   "output_index": 0, "arguments": args}
        elif item["type"] == "custom_tool_call":
            yield {"type": "response.output_item.added", "output_index": 0, "item": dict(item, status="in_progress",
                                                                                         input="")}
            source = item["input"]
            for piece in (source[: len(source) // 2], source[len(source) // 2:]):
                pieces += 1
                yield {"type": "response.custom_tool_call_input.delta", "item_id": item_id, "output_index": 0,
                       "delta": piece}
            yield {"type": "response.custom_tool_call_input.done", "item_id": item_id, "output_index": 0,
                   "input": source}
        else:
            text = item["content"][0]["text"]
            yield {"type": "response.output_item.added", "output_index": 0,
                   "item": dict(item, status="in_progress", content=[])}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield {"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
                   "part": empty}
            for piece in re.findall(r"\S+\s*", text) or [text]:
                pieces += 1
                yield {"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                       "content_index": 0, "delta": piece, "logprobs": []}
            yield {"type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0,
                   "text": text, "logprobs": []}
            yield {"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0,
                   "part": item["content"][0]}
        yield {"type": "response.output_item.done", "output_index": 0, "item": item}
        yield {"type": "response.completed", "response": self._response(
            body, resp_id, created, "completed", [item], self._usage(body, max(1, pieces)))}

    def _sse(self, body: dict[str, Any], resp_id: str, item: dict[str, Any]) -> Iterator[str]:
        for seq, event in enumerate(self._events(body, resp_id, item)):
            event["sequence_number"] = seq
            yield f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"

    # ---- routes ---------------------------------------------------------------------------------
    async def responses(self, request: Request) -> Response:
        rec = await self._record(request)
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        kind, item = self._decide(body)
        self.answers.append({"kind": kind, "item": item})
        if kind != "side":
            self.model_calls.append(rec)
        resp_id = "resp_" + uuid.uuid4().hex
        headers = {"x-request-id": "req_" + uuid.uuid4().hex}
        if body.get("stream"):
            return StreamingResponse(self._sse(body, resp_id, item), media_type="text/event-stream",
                                     headers=dict(headers, **{"cache-control": "no-cache"}))
        return JSONResponse(self._response(body, resp_id, int(time.time()), "completed", [item],
                                           self._usage(body, 5)), headers=headers)

    async def list_models(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                                         "owned_by": "scripted"} for m in self.models]})

    async def other(self, request: Request) -> Response:
        await self._record(request)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return JSONResponse({})
        return JSONResponse({"error": {"message": f"no route {request.url.path}", "type": "invalid_request_error",
                                       "param": None, "code": "not_found"}}, status_code=404)
