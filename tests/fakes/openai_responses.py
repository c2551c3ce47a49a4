"""POST /v1/responses for the fake OpenAI (tests/fakes/openai_upstream.py): OpenAI's Responses wire format.

The Response object and the stream events follow OpenAI's documented shapes (openai-openapi.yaml:
Response, ResponseStreamEvent; the same events the openai-python SDK's fixtures carry), every event
with `event:` named and a `sequence_number`. It validates what the real API validates for these
tests (model, input items with a type or a role, function_call_output answering a function_call
given in the same input when the request is stateless), and refuses a `previous_response_id` it
never issued (it stores nothing: the gateway sends `store: false` and resolves previous
responses itself). Behaviour follows the shared fake conventions, by the LAST input item:
  function_call_output    → "Tool said: <output>"
  "tool"                  → a function_call of the first function tool, arguments {"city": "Paris"}
  text.format json_schema → the text '{"name": "Ada", "age": 36}'
  "length"                → status incomplete (max_output_tokens), partial text
  "error:<status>"        → that status with OpenAI's error body
  otherwise               → "Hello from fake-openai: <text>"
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

__all__ = ["responses_endpoint"]


def _err(message: str, status: int = 400, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": None}}, status)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))


def _check(body: dict[str, Any]) -> JSONResponse | None:
    if not body.get("model"):
        return _err("Missing required parameter: 'model'.", param="model")
    if body.get("previous_response_id"):
        return _err(f"Previous response with id '{body['previous_response_id']}' not found.",
                    param="previous_response_id")
    items = body.get("input")
    if isinstance(items, list):
        calls = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not (item.get("type") or item.get("role")):
                return _err(f"Invalid value for 'input[{i}]'.", param=f"input[{i}]")
            if item.get("type") == "function_call":
                calls.add(item.get("call_id"))
            if item.get("type") == "function_call_output" and item.get("call_id") not in calls:
                return _err(f"No tool call found for function call output with call_id {item.get('call_id')}.",
                            param=f"input[{i}]")
    return None


def _decide(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else list(items or [])
    last = items[-1] if items else {}
    msg_id = "msg_" + uuid.uuid4().hex
    if last.get("type") == "function_call_output":
        text = f"Tool said: {_text(last.get('output'))}"
    else:
        text = _text(last.get("content"))
        fmt = (body.get("text") or {}).get("format") or {}
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        if text.strip() == "tool" and tools:
            return {"id": "fc_" + uuid.uuid4().hex, "type": "function_call", "status": "completed",
                    "call_id": "call_" + uuid.uuid4().hex[:24], "name": tools[0]["name"],
                    "arguments": json.dumps({"city": "Paris"})}, "completed"
        if fmt.get("type") == "json_schema":
            text = json.dumps({"name": "Ada", "age": 36})
        elif text.strip() == "length":
            return {"id": msg_id, "type": "message", "status": "incomplete", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Once upon", "annotations": [], "logprobs": []}]}, \
                "incomplete"
        else:
            text = f"Hello from fake-openai: {text} ({len(items)} items)"
    return {"id": msg_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}, "completed"


def _response(body: dict[str, Any], rid: str, created: int, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "status": status, "background": False,
            "completed_at": int(time.time()) if status == "completed" else None, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"] + "-2025-01-01", "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
            "store": body.get("store", True), "temperature": 1.0,
            "text": body.get("text") or {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
            "metadata": body.get("metadata") or {}, **({"usage": usage} if usage else {})}


def _usage(body: dict[str, Any]) -> dict[str, Any]:
    inp = max(1, len(json.dumps(body.get("input", ""))) // 4)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
            "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": inp + 9}


def _events(body: dict[str, Any], rid: str, item: dict[str, Any], status: str) -> Iterator[dict[str, Any]]:
    created = int(time.time())
    for kind in ("response.created", "response.in_progress"):
        yield {"type": kind, "response": _response(body, rid, created, "in_progress", [], None)}
    iid = item["id"]
    if item["type"] == "function_call":
        yield {"type": "response.output_item.added", "output_index": 0,
               "item": dict(item, status="in_progress", arguments="")}
        args = item["arguments"]
        for piece in (args[: len(args) // 2], args[len(args) // 2:]):
            yield {"type": "response.function_call_arguments.delta", "item_id": iid, "output_index": 0,
                   "delta": piece}
        yield {"type": "response.function_call_arguments.done", "item_id": iid, "output_index": 0,
               "name": item["name"], "arguments": args}
    else:
        part = item["content"][0]
        yield {"type": "response.output_item.added", "output_index": 0,
               "item": dict(item, status="in_progress", content=[])}
        yield {"type": "response.content_part.added", "item_id": iid, "output_index": 0, "content_index": 0,
               "part": dict(part, text="")}
        for word in part["text"].split(" "):
            yield {"type": "response.output_text.delta", "item_id": iid, "output_index": 0, "content_index": 0,
                   "delta": word + " " if word != part["text"].split(" ")[-1] else word, "logprobs": []}
        yield {"type": "response.output_text.done", "item_id": iid, "output_index": 0, "content_index": 0,
               "text": part["text"], "logprobs": []}
        yield {"type": "response.content_part.done", "item_id": iid, "output_index": 0, "content_index": 0,
               "part": part}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    final = "response.completed" if status == "completed" else "response.incomplete"
    yield {"type": final, "response": _response(body, rid, created, status, [item], _usage(body))}


def _sse(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


async def responses_endpoint(fake: Any, request: Request) -> Response:
    body = await request.json()
    fake.requests.append({"body": body, "headers": dict(request.headers), "path": request.url.path})
    if request.headers.get("authorization") != f"Bearer {fake.key}":
        return JSONResponse({"error": {"message": "Incorrect API key provided: sk-up***", "type":
                             "invalid_request_error", "param": None, "code": "invalid_api_key"}}, 401)
    problem = _check(body)
    if problem is not None:
        return problem
    items = body.get("input")
    last_text = items if isinstance(items, str) else _text((items or [{}])[-1].get("content"))
    if last_text.startswith("error:"):
        status = int(last_text.split(":", 1)[1])
        return JSONResponse({"error": {"message": f"fake failure {status}", "type": "server_error",
                                       "param": None, "code": None}}, status)
    item, status = _decide(body)
    rid = "resp_" + uuid.uuid4().hex
    if body.get("stream"):
        return StreamingResponse(_sse(_events(body, rid, item, status)), media_type="text/event-stream")
    return JSONResponse(_response(body, rid, int(time.time()), status, [item], _usage(body)))
