"""The internal answer and stream -> OpenAI Responses API objects and events.

`response_object` builds the Response (echoing the request's settings from `req.wire`);
`output_items(message)` turns an internal assistant message into output items (reasoning with its
summary and `encrypted_content`, message with output_text, function_call); `ResponsesStream`
renders internal chunks as the documented event sequence, every event with its `sequence_number`.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from skylane.core.errors import SkylaneError
from skylane.dialects.responses_parse import encode_reasoning
from skylane.pipeline.contract import CallView, StreamRenderer

__all__ = ["ResponsesStream", "new_id", "output_items", "response_object", "responses_usage", "status_of"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    pd = usage.get("prompt_tokens_details") or {}
    cd = usage.get("completion_tokens_details") or {}
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int(pd.get("cached_tokens") or 0),
                                     "cache_write_tokens": int(pd.get("cache_write_tokens") or 0)},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": int(cd.get("reasoning_tokens") or 0)},
            "total_tokens": int(usage.get("total_tokens") or prompt + completion)}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(view: CallView, rid: str, created: int, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, *, error: dict[str, Any] | None = None,
                    incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
    wire = view.req.wire
    reasoning: dict[str, Any] = wire["reasoning"] if isinstance(wire.get("reasoning"), dict) else {}
    text: dict[str, Any] = wire["text"] if isinstance(wire.get("text"), dict) else {}
    resp: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": created, "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "background": False, "error": error, "incomplete_details": incomplete,
        "instructions": wire.get("instructions"), "max_output_tokens": wire.get("max_output_tokens"),
        "max_tool_calls": None, "model": view.model, "output": output,
        "parallel_tool_calls": wire.get("parallel_tool_calls", True),
        "previous_response_id": wire.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": wire.get("store", True), "temperature": wire.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": wire.get("tool_choice", "auto"), "tools": wire.get("tools") or [],
        "top_p": wire.get("top_p", 1.0), "truncation": wire.get("truncation") or "disabled",
        "metadata": wire.get("metadata") or {},
    }
    if usage:  # absent until known (the document does not allow null)
        resp["usage"] = responses_usage(usage)
    for name in ("user", "safety_identifier", "prompt_cache_key"):  # strings when present (never null)
        if isinstance(wire.get(name), str):
            resp[name] = wire[name]
    return resp


def _reasoning_item(text: str, details: list[dict[str, Any]] | None, status: str = "completed") -> dict[str, Any]:
    item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "status": status,
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if details:
        item["encrypted_content"] = encode_reasoning(details)
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(message: dict[str, Any], status: str = "completed") -> list[dict[str, Any]]:
    """The output items of one internal assistant message."""
    items: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or ""
    details = message.get("reasoning_details")
    if reasoning or details:
        items.append(_reasoning_item(reasoning, details))
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts: list[dict[str, Any]] = []
    if content:
        parts.append(_text_part(content))
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        items.append({"id": new_id("msg"), "type": "message", "status": status, "role": "assistant",
                      "content": parts})
    for tc in message.get("tool_calls") or []:
        fn = tc.get("function") or {}
        items.append({"id": new_id("fc"), "type": "function_call", "status": "completed", "call_id": tc.get("id"),
                      "name": fn.get("name", ""), "arguments": fn.get("arguments") or ""})
    return items


def _failure(err: SkylaneError) -> dict[str, Any]:
    code = "rate_limit_exceeded" if err.status == 429 else "server_error"
    return {"code": code, "message": str(err)}


class ResponsesStream(StreamRenderer):
    """Internal chunks -> Responses events. Items open as their first delta arrives and close when
    another kind of item starts or at the end."""

    def __init__(self, view: CallView) -> None:
        self.view = view
        self.rid = new_id("resp")
        self.created = int(time.time())
        self.seq = 0
        self.started = False
        self.items: list[dict[str, Any]] = []  # finished items, in output order
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.calls: dict[int, dict[str, Any]] = {}  # internal tool-call index -> open function_call item
        self.finish: str | None = None
        self.final: dict[str, Any] | None = None

    # ---- framing ----------------------------------------------------------------------------
    def _ev(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, **fields, "sequence_number": self.seq}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        resp = response_object(self.view, self.rid, self.created, "in_progress", [], None)
        return self._ev("response.created", response=resp) + self._ev("response.in_progress", response=resp)

    @property
    def _index(self) -> int:
        return len(self.items)

    # ---- items ------------------------------------------------------------------------------
    def _open(self, item: dict[str, Any]) -> bytes:
        out = self._close()
        self.open = item
        added = {k: v for k, v in item.items() if not k.startswith("_")}
        return out + self._ev("response.output_item.added", output_index=self._index, item=added)

    def _close(self) -> bytes:
        item, self.open = self.open, None
        if item is None:
            return b""
        idx = self._index
        out = b""
        kind = item["type"]
        if kind == "reasoning":
            text = item.pop("_text")
            details = item.pop("_details")
            if item.pop("_part"):
                out += self._ev("response.reasoning_summary_text.done", item_id=item["id"], output_index=idx,
                                summary_index=0, text=text)
                part = {"type": "summary_text", "text": text}
                out += self._ev("response.reasoning_summary_part.done", item_id=item["id"], output_index=idx,
                                summary_index=0, part=part)
                item["summary"] = [part]
            if details:
                item["encrypted_content"] = encode_reasoning(details)
        elif kind == "message":
            text = item.pop("_text")
            part = _text_part(text)
            out += self._ev("response.output_text.done", item_id=item["id"], output_index=idx, content_index=0,
                            text=text, logprobs=[])
            out += self._ev("response.content_part.done", item_id=item["id"], output_index=idx, content_index=0,
                            part=part)
            item["content"] = [part]
        elif kind == "function_call":
            out += self._ev("response.function_call_arguments.done", item_id=item["id"], output_index=idx,
                            name=item["name"], arguments=item["arguments"])
        item["status"] = "completed"
        self.items.append(item)
        return out + self._ev("response.output_item.done", output_index=idx, item=item)

    def _reasoning(self) -> tuple[dict[str, Any], bytes]:
        if self.open is not None and self.open["type"] == "reasoning":
            return self.open, b""
        item = {"id": new_id("rs"), "type": "reasoning", "status": "in_progress", "summary": [],
                "_text": "", "_details": [], "_part": False}
        out = self._open(item)
        return item, out

    def chunk(self, c: dict[str, Any]) -> bytes:
        out = self._start()
        for choice in c.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("reasoning_content")
            if text:
                item, opened = self._reasoning()
                out += opened
                idx = self._index
                if not item["_part"]:
                    item["_part"] = True
                    out += self._ev("response.reasoning_summary_part.added", item_id=item["id"], output_index=idx,
                                    summary_index=0, part={"type": "summary_text", "text": ""})
                item["_text"] += text
                out += self._ev("response.reasoning_summary_text.delta", item_id=item["id"], output_index=idx,
                                summary_index=0, delta=text)
            if delta.get("reasoning_details"):
                item, opened = self._reasoning()
                out += opened
                item["_details"].extend(delta["reasoning_details"])
            content = delta.get("content")
            if content:
                if self.open is None or self.open["type"] != "message":
                    item = {"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                            "content": [], "_text": ""}
                    out += self._open(item)
                    out += self._ev("response.content_part.added", item_id=item["id"], output_index=self._index,
                                    content_index=0, part=_text_part(""))
                assert self.open is not None
                self.open["_text"] += content
                out += self._ev("response.output_text.delta", item_id=self.open["id"], output_index=self._index,
                                content_index=0, delta=content, logprobs=[])
            for tc in delta.get("tool_calls") or []:
                out += self._tool_delta(tc)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def _tool_delta(self, tc: dict[str, Any]) -> bytes:
        out = b""
        index = tc.get("index", 0)
        fn = tc.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                    "call_id": tc.get("id") or new_id("call"), "name": fn.get("name") or "", "arguments": ""}
            self.calls[index] = item
            out += self._open(dict(item, arguments=""))
            self.open = item
        elif item is not self.open:  # a fragment of a call already closed: keep it whole anyway
            item["arguments"] += fn.get("arguments") or ""
            return out
        args = fn.get("arguments") or ""
        if args:
            item["arguments"] += args
            out += self._ev("response.function_call_arguments.delta", item_id=item["id"], output_index=self._index,
                            delta=args)
        return out

    def end(self, usage: dict[str, Any] | None) -> bytes:
        out = self._start() + self._close()
        status, incomplete = status_of(self.finish)
        self.final = response_object(self.view, self.rid, self.created, status, self.items, usage,
                                     incomplete=incomplete)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._ev(kind, response=self.final)

    def error(self, err: SkylaneError) -> bytes:
        out = self._start()
        out += self._ev("error", code=err.code or err.type, message=str(err), param=err.param)
        failed = response_object(self.view, self.rid, self.created, "failed", self.items, None, error=_failure(err))
        return out + self._ev("response.failed", response=failed)
