"""OpenAI Responses API requests -> the internal request (ChatRequest, chat shape).

`to_chat(body)` converts a Responses body (input items, instructions, tools, text.format, reasoning,
max_output_tokens, ...) to a chat-completions body and lists what a bridged target cannot serve
(built-in tools, item types without a chat equivalent); `parse(body)` validates it and keeps the
body as sent in `req.wire` for native passthrough. Reasoning round-trips statelessly: the internal
`reasoning_details` travel in a reasoning item's `encrypted_content` (`encode_reasoning`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from skylane.core.errors import InvalidRequest
from skylane.core.request import ChatRequest, parse_request, with_model

__all__ = ["DROPPED_TOOLS", "decode_reasoning", "encode_reasoning", "load_body", "parse", "to_chat"]

# built-in tools a bridged target silently goes without (Codex always offers web_search)
DROPPED_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_preview_2025_03_11", "namespace"})
_REASONING_PREFIX = "skylane.r1."
_UNSUPPORTED_FIELDS = ("background", "conversation", "prompt")


def encode_reasoning(details: list[dict[str, Any]]) -> str:
    """The internal reasoning_details as a reasoning item's `encrypted_content`."""
    raw = json.dumps(details, separators=(",", ":")).encode()
    return _REASONING_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_reasoning(value: Any) -> list[dict[str, Any]] | None:
    """reasoning_details from an `encrypted_content` this gateway wrote; None for anyone else's."""
    if not isinstance(value, str) or not value.startswith(_REASONING_PREFIX):
        return None
    payload = value[len(_REASONING_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidRequest("Invalid encrypted_content in a reasoning item.", param="input") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise InvalidRequest("Invalid encrypted_content in a reasoning item.", param="input")
    return data


def load_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("We could not parse the JSON body of your request. The body must be valid JSON.",
                             code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def _text_of(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid value for '{param}': expected a string or a list of parts.", param=param)
    return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict)
                   and p.get("type") in ("input_text", "output_text", "text", "summary_text"))


def _user_parts(content: Any, param: str, problems: list[str]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid value for '{param}': expected a string or a list of parts.", param=param)
    parts: list[dict[str, Any]] = []
    for i, p in enumerate(content):
        if not isinstance(p, dict):
            raise InvalidRequest(f"Invalid value for '{param}[{i}]': expected an object.", param=f"{param}[{i}]")
        kind = p.get("type")
        extra = {"cache_control": p["cache_control"]} if "cache_control" in p else {}
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": p.get("text", ""), **extra})
        elif kind == "input_image":
            url = p.get("image_url")
            if not url:
                problems.append("input_image with file_id (only image_url)")
                continue
            image: dict[str, Any] = {"url": url}
            if p.get("detail") in ("auto", "low", "high"):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image, **extra})
        elif kind == "input_file":
            if p.get("file_url"):
                problems.append("input_file with file_url")
                continue
            file = {k: p[k] for k in ("file_data", "file_id", "filename") if p.get(k) is not None}
            parts.append({"type": "file", "file": file, **extra})
        elif kind == "input_audio":
            parts.append({"type": "input_audio", "input_audio": p.get("input_audio", {})})
        else:
            problems.append(f"content part type '{kind}'")
    return parts or ""


class _History:
    """Input items -> chat messages; consecutive assistant items become one assistant message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._assistant: dict[str, Any] | None = None

    def assistant(self) -> dict[str, Any]:
        if self._assistant is None:
            self._assistant = {"role": "assistant", "content": None}
            self.messages.append(self._assistant)
        return self._assistant

    def flush(self) -> None:
        self._assistant = None

    def add(self, item: Any, param: str) -> None:
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid value for '{param}': expected an object.", param=param)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self._message(item, param)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise InvalidRequest(f"Missing required parameter: '{param}.call_id' / '{param}.name'.", param=param)
            args = item.get("arguments")
            self.assistant().setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args or {})}})
        elif kind == "function_call_output":
            self.flush()
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"Missing required parameter: '{param}.call_id'.", param=f"{param}.call_id")
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output, f"{param}.output")
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            msg = self.assistant()
            details = decode_reasoning(item.get("encrypted_content"))
            if details:
                msg.setdefault("reasoning_details", []).extend(details)
            parts = item.get("summary")
            summary = _text_of([s for s in parts if isinstance(s, dict)], param) if isinstance(parts, list) else ""
            if summary:
                msg["reasoning_content"] = (msg.get("reasoning_content") or "") + summary
        else:
            self.problems.append(f"input item type '{kind}'")

    def _message(self, item: dict[str, Any], param: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            msg = self.assistant()
            if isinstance(content, list):
                refusal = "".join(str(p.get("refusal") or "") for p in content
                                  if isinstance(p, dict) and p.get("type") == "refusal")
                if refusal:
                    msg["refusal"] = refusal
            text = _text_of(content, f"{param}.content")
            if text:
                msg["content"] = (msg.get("content") or "") + text
            return
        self.flush()
        if role in ("system", "developer"):
            self.messages.append({"role": role, "content": _text_of(content, f"{param}.content")})
        elif role == "user":
            self.messages.append({"role": "user", "content": _user_parts(content, f"{param}.content", self.problems)})
        else:
            raise InvalidRequest(f"Invalid value for '{param}.role': {str(role)[:32]!r}. Supported values are: "
                                 "'user', 'system', 'developer' and 'assistant'.", param=f"{param}.role")


def _tools(body: dict[str, Any], problems: list[str]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("Invalid value for 'tools': expected an array.", param="tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise InvalidRequest(f"Invalid value for 'tools[{i}]': expected an object.", param=f"tools[{i}]")
        kind = t.get("type")
        if not isinstance(kind, str):
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].type'.", param=f"tools[{i}].type")
        if kind == "function":
            fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}
            extra = {"cache_control": t["cache_control"]} if "cache_control" in t else {}
            out.append({"type": "function", "function": fn, **extra})
        elif kind not in DROPPED_TOOLS:
            problems.append(f"tool '{kind}'")
    return out or None


def _tool_choice(choice: Any, problems: list[str]) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            return {"type": "function", "function": {"name": choice.get("name")}}
        if choice.get("type") == "allowed_tools":
            return choice.get("mode") or "auto"
        problems.append(f"tool_choice '{choice.get('type')}'")
        return "auto"
    raise InvalidRequest("Invalid value for 'tool_choice'.", param="tool_choice")


def _format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "description", "schema", "strict") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest(f"Invalid value for 'text.format.type': {str(fmt.get('type'))[:32]!r}. Supported values "
                         "are: 'text', 'json_object' and 'json_schema'.", param="text.format.type")


def to_chat(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The chat-completions body for a Responses body, and what a bridged target cannot serve."""
    history = _History()
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        history.messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        history.messages.append({"role": "system", "content": _text_of(instructions, "instructions")})
    items = body.get("input")
    if isinstance(items, str):
        history.messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for i, item in enumerate(items):
            history.add(item, f"input[{i}]")
    elif items is not None:
        raise InvalidRequest("Invalid value for 'input': expected a string or an array of items.", param="input")
    messages = history.messages or [{"role": "user", "content": ""}]
    problems = history.problems
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": bool(body.get("stream"))}
    tools = _tools(body, problems)
    if tools:
        chat["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), problems)
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = _format(body.get("text"))
    if fmt:
        chat["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "metadata", "models", "prompt_cache_key", "prompt_cache_retention"):
        if body.get(name) is not None:
            chat[name] = body[name]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str):
        chat["user"] = user
    if chat["stream"]:
        chat["stream_options"] = {"include_usage": True}
    return chat, problems


def parse(data: dict[str, Any], default_model: str | None) -> ChatRequest:
    """Validate a Responses body (already JSON-decoded) into the internal request."""
    for name in _UNSUPPORTED_FIELDS:
        if data.get(name):
            raise InvalidRequest(f"'{name}' is not supported by this gateway.", param=name,
                                 code="unsupported_parameter")
    data["model"] = with_model(data, default_model)["model"]  # in place: the wire body carries it too
    for name, kind in (("store", bool), ("stream", bool), ("previous_response_id", str), ("include", list)):
        if data.get(name) is not None and not isinstance(data[name], kind):
            raise InvalidRequest(f"Invalid type for '{name}'.", param=name, code="invalid_type")
    if data.get("previous_response_id") == "":
        raise InvalidRequest("Invalid 'previous_response_id': empty string.", param="previous_response_id",
                             code="invalid_value")
    chat, _ = to_chat(data)
    req = parse_request(chat)
    req._wire = data
    return req
