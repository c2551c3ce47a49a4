"""Anthropic Messages: the request body for an OpenAI chat request (see anthropic.py for the mapping)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UnsupportedParameter
from skylane.core.request import UserMessage
from skylane.providers.anthropic_thinking import assistant_thinking, thinking_fields
from skylane.providers.base import NAME_ANTHROPIC, append_turn, content_text, parse_data_url, tool_names, wire_name
from skylane.providers.reasoning import blank, cache_mark, original_id

__all__ = ["JSON_TOOL", "build_body", "build_messages", "json_mode", "tool_id"]

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

JSON_TOOL = "json_response"
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")
_PERMISSIVE_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def tool_id(call_id: str) -> str:
    return _ID_BAD.sub("_", original_id(call_id)) or "toolu_empty"


def _marked(block: dict[str, Any], obj: Any) -> dict[str, Any]:
    """The block with the cache breakpoint `obj` (a part, message or tool) asks for after it."""
    mark = cache_mark(obj)
    if mark is not None:
        block["cache_control"] = mark
    return block


def thinking_on(fields: dict[str, Any]) -> bool:
    return (fields.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def json_mode(req: ChatRequest) -> bool:
    fmt = req.response_format
    return fmt is not None and fmt.type in ("json_schema", "json_object")


# ---- request ---------------------------------------------------------------------------------


def _check_params(req: ChatRequest) -> None:
    bad: list[str] = []
    if req.n is not None and req.n > 1:
        bad.append("n")
    if req.logprobs:
        bad.append("logprobs")
    if req.top_logprobs:
        bad.append("top_logprobs")
    if req.presence_penalty:
        bad.append("presence_penalty")
    if req.frequency_penalty:
        bad.append("frequency_penalty")
    if req.logit_bias:
        bad.append("logit_bias")
    modalities = (req.model_extra or {}).get("modalities")
    if isinstance(modalities, list) and "audio" in modalities:
        bad.append("modalities")
    if bad:
        names = ", ".join(f"'{b}'" for b in bad)
        raise UnsupportedParameter(f"Anthropic models do not support {names}.", param=bad[0])
    if req.temperature is not None and req.temperature > 1:
        raise InvalidRequest(
            f"Invalid value for 'temperature': {req.temperature}. Anthropic models accept 0 to 1.",
            param="temperature", code="invalid_value",
        )


def _arguments(raw: str, param: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{param}': the tool call arguments are not valid JSON.",
                             param=param, code="invalid_value") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid value for '{param}': the tool call arguments must be a JSON object.",
                             param=param, code="invalid_value")
    return value


def _user_part(part: Any, param: str, target: Target) -> dict[str, Any] | None:
    kind = part.type
    if kind == "text":
        return None if blank(part.text) else _marked({"type": "text", "text": part.text}, part)
    if kind == "image_url":
        if not target.model.vision:
            raise InvalidRequest(f"Model '{target.requested}' does not accept image input.", param=param,
                                 code="unsupported_content")
        url = part.image_url.url
        if url.startswith("gs://"):
            raise InvalidRequest("gs:// image URLs are for Gemini; Anthropic takes data URLs or https URLs.",
                                 param=param, code="unsupported_content")
        media = parse_data_url(url)
        if media is None:
            return _marked({"type": "image", "source": {"type": "url", "url": url}}, part)
        mime = "image/jpeg" if media.mime_type == "image/jpg" else media.mime_type
        if mime not in _IMAGE_TYPES:
            raise InvalidRequest(
                f"Image type '{mime}' is not supported by Anthropic (use jpeg, png, gif or webp).",
                param=param, code="unsupported_content",
            )
        return _marked({"type": "image", "source": {"type": "base64", "media_type": mime,
                                                    "data": url.split(",", 1)[1]}}, part)
    if kind == "video_url":
        raise InvalidRequest(f"Model '{target.requested}' does not accept video input.", param=param,
                             code="unsupported_content")
    if kind == "file":
        data = part.file.file_data
        media = parse_data_url(data) if data else None
        if media is not None and media.mime_type == "application/pdf":
            return _marked({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                           "data": data.split(",", 1)[1]}}, part)
        raise UnsupportedParameter("Anthropic models accept files only as PDF data URLs in 'file_data'.",
                                   param=param)
    raise UnsupportedParameter(f"Anthropic models do not accept '{kind}' content.", param=param)


def _tool_result(msg: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(msg.tool_call_id)}
    text = content_text(msg.content)
    if text:
        block["content"] = text
    return block


def _assistant_blocks(msg: Any, i: int, names: dict[str, str], thinking: bool) -> list[dict[str, Any]]:
    # signed thinking first (restored only when thinking is on: Anthropic refuses it otherwise)
    blocks: list[dict[str, Any]] = assistant_thinking(msg) if thinking else []
    if isinstance(msg.content, str):
        if not blank(msg.content):
            blocks.append({"type": "text", "text": msg.content})
    elif msg.content:
        for part in msg.content:
            text = part.text if part.type == "text" else part.refusal
            if not blank(text):
                blocks.append({"type": "text", "text": text})
    if not msg.content and not blank(msg.refusal):  # a refusal-only answer stays in the history
        blocks.append({"type": "text", "text": msg.refusal})
    for j, call in enumerate(msg.tool_calls or ()):
        param = f"messages[{i}].tool_calls[{j}].function.arguments"
        blocks.append({"type": "tool_use", "id": tool_id(call.id),
                       "name": wire_name(call.function.name, names, NAME_ANTHROPIC),
                       "input": _arguments(call.function.arguments, param)})
    if msg.function_call is not None:
        raise UnsupportedParameter("Legacy 'function_call' messages are not supported; use 'tool_calls'.",
                                   param=f"messages[{i}].function_call")
    return blocks


def _system_blocks(msg: Any) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [] if blank(msg.content) else [{"type": "text", "text": msg.content}]
    return [_marked({"type": "text", "text": p.text}, p) for p in msg.content if not blank(p.text)]


def build_messages(req: ChatRequest, target: Target, names: dict[str, str] | None = None,
                   thinking: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating messages) for an OpenAI message list. A message's own
    cache_control marks its last block; whitespace-only text is dropped and a final assistant
    prefill loses its trailing whitespace (Anthropic refuses both)."""
    names = names if names is not None else tool_names(req, NAME_ANTHROPIC)
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(req.messages):
        role = msg.role
        if role in ("system", "developer"):
            blocks = _system_blocks(msg)
            if blocks:
                _marked(blocks[-1], msg)
            system.extend(blocks)
            continue
        if role == "user":
            assert isinstance(msg, UserMessage)  # the role names the message type
            if isinstance(msg.content, str):
                blocks = [] if blank(msg.content) else [{"type": "text", "text": msg.content}]
            else:
                blocks = [b for j, p in enumerate(msg.content)
                          if (b := _user_part(p, f"messages[{i}].content[{j}]", target)) is not None]
        elif role == "tool":
            role, blocks = "user", [_tool_result(msg)]
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i, names, thinking)
        else:
            raise UnsupportedParameter("Legacy 'function' messages are not supported; use tool messages.",
                                       param=f"messages[{i}].role")
        if blocks:
            _marked(blocks[-1], msg)
        append_turn(out, role, blocks, "content")
    if out and out[-1]["role"] == "assistant" and out[-1]["content"][-1]["type"] == "text":
        last = out[-1]["content"][-1]
        last["text"] = last["text"].rstrip()
        if not last["text"]:
            out[-1]["content"].pop()
            if not out[-1]["content"]:
                out.pop()
    for m in out:
        if m["role"] == "user":  # tool results must open a user turn
            m["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not out:
        raise InvalidRequest("The request has no user or assistant message with content.", param="messages",
                             code="invalid_value")
    return system, out


def _tools(req: ChatRequest, names: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    tools: list[dict[str, Any]] = []
    for t in req.tools or ():
        fn = t.function
        tool: dict[str, Any] = {"name": names[fn.name], "input_schema": fn.parameters or {"type": "object",
                                                                                         "properties": {}}}
        if fn.description:
            tool["description"] = fn.description
        tools.append(_marked(tool, t))
    choice: dict[str, Any] | None = None
    tc = req.tool_choice
    if tc == "none":
        choice = {"type": "none"}
    elif tc == "required":
        choice = {"type": "any"}
    elif tc == "auto":
        choice = {"type": "auto"}
    elif tc is not None:
        choice = {"type": "tool", "name": wire_name(tc.function.name, names, NAME_ANTHROPIC)}
    if json_mode(req):
        fmt = req.response_format
        schema_: dict[str, Any] = dict(_PERMISSIVE_OBJECT)
        description = "Answer with a JSON object."
        if fmt is not None and fmt.type == "json_schema":
            schema_ = fmt.json_schema.schema_ or dict(_PERMISSIVE_OBJECT)
            name = fmt.json_schema.name
            description = fmt.json_schema.description or f"Answer with JSON matching the '{name}' schema."
        if any(t["name"] == JSON_TOOL for t in tools):
            raise InvalidRequest(f"The tool name '{JSON_TOOL}' is reserved when 'response_format' asks for JSON.",
                                 param="tools", code="invalid_value")
        if not tools or tc == "none":
            tools = []
            choice = {"type": "tool", "name": JSON_TOOL}
        elif choice is None or choice["type"] == "auto":
            choice = {"type": "any"}  # a real tool call, or the JSON answer
        tools.append({"name": JSON_TOOL, "description": description, "input_schema": schema_})
    if not tools:
        return [], None
    if req.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
        choice = dict(choice or {"type": "auto"})
        choice["disable_parallel_tool_use"] = True
    return tools, choice


def build_body(req: ChatRequest, target: Target, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body for a chat completions request (pure)."""
    _check_params(req)
    names = tool_names(req, NAME_ANTHROPIC)
    max_tokens, thinking = thinking_fields(req, target, default_max_tokens)
    system, messages = build_messages(req, target, names, thinking_on(thinking))
    body: dict[str, Any] = {"model": target.upstream_model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = system
    body.update(thinking)
    top_k = (req.model_extra or {}).get("top_k")
    if not thinking_on(thinking):  # extended thinking refuses temperature, top_k and a narrowed top_p
        # recent Claude models refuse temperature and top_p together: temperature wins, top_p is dropped
        if req.temperature is not None:
            body["temperature"] = req.temperature
        elif req.top_p is not None:
            body["top_p"] = req.top_p
        if isinstance(top_k, int) and not isinstance(top_k, bool):
            body["top_k"] = top_k
    if req.stop_list:
        body["stop_sequences"] = req.stop_list
    tools, choice = _tools(req, names)
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body

