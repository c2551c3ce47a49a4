"""Anthropic Messages request -> the internal request (OpenAI chat shape).

The Messages body is kept whole as `req.wire` (native passthrough to Anthropic and to Claude on
Bedrock sends it as the client sent it); the chat-shaped translation is what every other provider
gets. Mapping:

    Messages                                  internal (chat completions)
    ----------------------------------------  ------------------------------------------------------
    system (string or text blocks)            a system message first (text parts, cache_control kept)
    role "system" inside messages (Claude     a system message where it stands
      Code does this mid-conversation)
    text / image (base64, url) blocks         text / image_url parts (data: URL for base64)
    document (base64 PDF, text source)        file part with a PDF data URL / text part; a URL
                                              document is a 400 (no provider fetches it for us)
    tool_result blocks                        tool messages (text); images in a result follow as a
                                              user message; `is_error` prefixes "Error: "
    assistant tool_use                        tool_calls (arguments = JSON of `input`)
    assistant thinking / redacted_thinking    reasoning_details (reasoning.text with signature /
                                              reasoning.encrypted, format anthropic-claude-v1) and
                                              reasoning_content
    tools (name, description, input_schema)   function tools (cache_control kept on the tool);
                                              server tools (a `type` other than "custom": web
                                              search, bash, text editor...) are dropped
    tool_choice auto / any / tool / none      "auto" / "required" / named function / "none";
      disable_parallel_tool_use               parallel_tool_calls false
    stop_sequences, temperature, top_p        stop, temperature, top_p
    top_k                                     dropped (no chat-completions field; a sampling hint)
    metadata.user_id                          user
    thinking enabled (budget_tokens)          reasoning_effort: <= 4096 low, <= 16384 medium, else high
    thinking adaptive / output_config.effort  reasoning_effort = the effort (max -> xhigh), default high
    output_config.format json_schema          response_format json_schema
    max_tokens                                max_completion_tokens
    context_management, container,            dropped for translated targets (Anthropic features)
      mcp_servers, service_tier
"""

from __future__ import annotations

import json
import re
from typing import Any

from skylane.core.errors import InvalidRequest
from skylane.core.request import ChatRequest, parse_request
from skylane.dialects.anthropic_checks import bad, check_fields, integer, load_body, nonblank

__all__ = ["parse_messages", "to_chat"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh", "xhigh": "xhigh", "minimal": "minimal"}


def _with_cache(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    cc = block.get("cache_control")
    if isinstance(cc, dict):
        part["cache_control"] = cc
    return part


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": nonblank(content, f"{where}.content")}]
    if not isinstance(content, list):
        raise bad(f"{where}.content: Input should be a valid string or list of content blocks", where)
    for j, b in enumerate(content):
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            raise bad(f"{where}.content.{j}: each content block must be an object with a type", where)
    return content


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise bad(f"{where}.source: Field required", where)
    if src.get("type") == "base64":
        mime, data = src.get("media_type"), src.get("data")
        if not isinstance(mime, str) or not isinstance(data, str) or not data:
            raise bad(f"{where}.source: base64 images need media_type and data", where)
        url = f"data:{mime};base64,{data}"
    elif src.get("type") == "url" and isinstance(src.get("url"), str):
        url = src["url"]
    else:
        raise bad(f"{where}.source.type: images take a base64 or url source here", where)
    return _with_cache({"type": "image_url", "image_url": {"url": url}}, block)


def _document(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise bad(f"{where}.source: Field required", where)
    kind = src.get("type")
    if kind == "base64" and src.get("media_type") == "application/pdf" and isinstance(src.get("data"), str):
        name = block.get("title") if isinstance(block.get("title"), str) else "document.pdf"
        part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{src['data']}",
                                         "filename": name}}
        return _with_cache(part, block)
    if kind == "text" and isinstance(src.get("data"), str):
        return _with_cache({"type": "text", "text": src["data"]}, block)
    raise bad(f"{where}.source: for this model, documents must be base64 PDFs or text sources", where)


def _user_part(block: dict[str, Any], where: str) -> dict[str, Any] | None:
    kind = block["type"]
    if kind == "text":
        return _with_cache({"type": "text", "text": nonblank(block.get("text"), f"{where}.text")}, block)
    if kind == "image":
        return _image(block, where)
    if kind == "document":
        return _document(block, where)
    if kind in ("thinking", "redacted_thinking"):
        return None
    raise bad(f"{where}.type: content block type '{kind}' is not supported for this model", where)


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the tool message, image parts that must follow as a user message)."""
    tid = block.get("tool_use_id")
    if not isinstance(tid, str) or not tid:
        raise bad(f"{where}.tool_use_id: Field required", where)
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    content = block.get("content", "")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else _blocks(content, where)
    for k, part in enumerate(parts):  # a tool's output may be empty
        if part["type"] == "text":
            texts.append(str(part.get("text") or ""))
        elif part["type"] == "image":
            images.append(_image(part, f"{where}.content.{k}"))
        elif part["type"] == "document":
            images.append(_document(part, f"{where}.content.{k}"))
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    msg: dict[str, Any] = {"role": "tool", "tool_call_id": tid, "content": text}
    return _with_cache(msg, block), images


def _user(content: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        bw = f"{where}.content.{j}"
        if block["type"] == "tool_result":
            tool_msg, extra = _tool_result(block, bw)
            out.append(tool_msg)
            parts.extend(extra)
        else:
            part = _user_part(block, bw)
            if part is not None:
                parts.append(part)
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(content: Any, where: str) -> dict[str, Any] | None:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    thinking: list[str] = []
    for j, block in enumerate(_blocks(content, where)):
        kind = block["type"]
        bw = f"{where}.content.{j}"
        if kind == "text":
            texts.append(_with_cache({"type": "text", "text": nonblank(block.get("text"), f"{bw}.text")}, block))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad(f"{bw}: tool_use blocks need an id and a name", bw)
            args = block.get("input", {})
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": json.dumps(args, ensure_ascii=False)}})
        elif kind == "thinking":
            text = str(block.get("thinking") or "")
            thinking.append(text)
            details.append({"type": "reasoning.text", "text": text, "signature": block.get("signature"),
                            "format": "anthropic-claude-v1", "index": len(details)})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": str(block.get("data") or ""),
                            "format": "anthropic-claude-v1", "index": len(details)})
        # server_tool_use / *_tool_result and other Anthropic-hosted blocks: nothing to replay elsewhere
    if not (texts or calls or details):
        return None
    msg: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in t for t in texts):
        msg["content"] = texts
    else:
        msg["content"] = "".join(t["text"] for t in texts) if texts else None
    if calls:
        msg["tool_calls"] = calls
    if details:
        msg["reasoning_details"] = details
        msg["reasoning_content"] = "".join(thinking) or None
    return msg


def _system_message(content: Any, where: str) -> dict[str, Any] | None:
    parts = []
    for block in _blocks(content, where):
        if block["type"] != "text":
            raise bad(f"{where}: system content must be text blocks", where)
        parts.append(_with_cache({"type": "text", "text": nonblank(block.get("text"), where)}, block))
    return {"role": "system", "content": parts} if parts else None


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad("tools: Input should be a valid list", "tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            raise bad(f"tools.{i}: Input should be an object", "tools")
        if t.get("type") not in (None, "custom"):
            continue  # a server tool (web search, bash, text editor...): Anthropic-hosted only
        if not isinstance(t.get("name"), str) or not isinstance(t.get("input_schema"), dict):
            raise bad(f"tools.{i}: each tool needs a name and an input_schema", f"tools.{i}")
        if not _TOOL_NAME.match(t["name"]) or not isinstance(t.get("description", ""), str):
            raise bad(f"tools.{i}: the name must match ^[a-zA-Z0-9_-]{{1,128}}$ and the description be a string",
                       f"tools.{i}")
        schema = t["input_schema"]
        if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
            raise bad(f"tools.{i}.input_schema: a JSON Schema of type 'object' (its properties an object)",
                       f"tools.{i}")
        fn: dict[str, Any] = {"name": t["name"], "parameters": t["input_schema"]}
        if isinstance(t.get("description"), str):
            fn["description"] = t["description"]
        out.append(_with_cache({"type": "function", "function": fn}, t))
    return out


def _tool_choice(body: dict[str, Any], chat: dict[str, Any]) -> None:
    tc = body.get("tool_choice")
    if tc is None:
        return
    if not isinstance(tc, dict) or tc.get("type") not in ("auto", "any", "tool", "none"):
        raise bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice")
    kind = tc["type"]
    if not isinstance(tc.get("disable_parallel_tool_use", False), bool):
        raise bad("tool_choice.disable_parallel_tool_use: Input should be a valid boolean", "tool_choice")
    if kind == "tool":
        if not isinstance(tc.get("name"), str):
            raise bad("tool_choice.name: Field required", "tool_choice")
        chat["tool_choice"] = {"type": "function", "function": {"name": tc["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if tc.get("disable_parallel_tool_use") is True and chat.get("tools"):
        chat["parallel_tool_calls"] = False


def _effort(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    raw_config = body.get("output_config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    effort = config.get("effort") if isinstance(config.get("effort"), str) else None
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind == "disabled":
            return None
        if kind == "enabled":
            budget = integer(thinking.get("budget_tokens")) or 0
            return "low" if budget <= 4096 else "medium" if budget <= 16384 else "high"
        if kind == "adaptive":
            return _EFFORTS.get(effort or "high", "high")
    return _EFFORTS.get(effort) if effort else None


def to_chat(body: dict[str, Any], *, count_only: bool = False) -> dict[str, Any]:
    """The chat-completions body for a Messages body (validated as the Messages API does)."""
    check_fields(body)
    chat: dict[str, Any] = {"model": body.get("model")}
    max_tokens = integer(body.get("max_tokens"))
    if not count_only:
        if body.get("max_tokens") is None:
            raise InvalidRequest("max_tokens: Field required", param="max_tokens", code="missing_required")
        if max_tokens is None or max_tokens < 1:
            raise bad("max_tokens: Input should be an integer greater than or equal to 1", "max_tokens")
        chat["max_completion_tokens"] = max_tokens
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: at least one message is required", param="messages",
                             code="missing_required")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        sys_msg = _system_message(system, "system")
        if sys_msg:
            messages.append(sys_msg)
    for i, m in enumerate(raw_messages):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise bad(f"{where}: Input should be an object", where)
        role = m.get("role")
        if m.get("content") == []:
            raise bad(f"{where}: all messages must have non-empty content", where)
        if role == "user":
            messages.extend(_user(m.get("content"), where))
        elif role == "assistant":
            msg = _assistant(m.get("content"), where)
            if msg is not None:
                messages.append(msg)
        elif role == "system":
            sys_msg = _system_message(m.get("content"), where)
            if sys_msg:
                messages.append(sys_msg)
        else:
            raise bad(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
    chat["messages"] = messages
    tools = _tools(body)
    if tools:
        chat["tools"] = tools
    _tool_choice(body, chat)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    stops = body.get("stop_sequences")
    if stops:
        chat["stop"] = stops
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        chat["user"] = meta["user_id"]
    if body.get("stream") is True and not count_only:
        chat["stream"] = True
    effort = _effort(body)
    if effort:
        chat["reasoning_effort"] = effort
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    return chat


def parse_messages(body: bytes, default_model: str | None, *, count_only: bool = False) -> ChatRequest:
    """Parse and validate a Messages body; the internal request carries the body as `wire`."""
    data = load_body(body)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("model: Input should be a valid string", "model")
    if not model:
        if not default_model:
            raise InvalidRequest("model: Field required", param="model", code="missing_model")
        data["model"] = default_model
    chat = to_chat(data, count_only=count_only)
    if not chat["messages"]:
        raise InvalidRequest("messages: all messages must have non-empty content", param="messages",
                             code="invalid_value")
    req = parse_request(chat)
    req._wire = data
    return req
