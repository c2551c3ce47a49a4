"""Gemini generateContent: the request body for an OpenAI chat request (see gemini.py)."""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UnsupportedParameter
from skylane.core.request import AssistantMessage, FunctionMessage, ToolMessage
from skylane.providers.base import (
    NAME_GEMINI,
    CallContext,
    Media,
    append_turn,
    content_text,
    parse_data_url,
    tool_names,
    wire_name,
)
from skylane.providers.reasoning import budget, details_of, effort, lowest, signature_from_id

__all__ = ["build_body"]

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

_DROPPED = {"user", "metadata", "store", "safety_identifier", "prompt_cache_key", "service_tier",
            "parallel_tool_calls", "stream_options"}
FORMAT = "google-gemini-v1"
_SKIP_SIGNATURE = "skip_thought_signature_validator"
_FILE_URI = re.compile(r"^(gs://|https://generativelanguage\.googleapis\.com/)")
_YOUTUBE = re.compile(r"^https?://(www\.|m\.)?(youtube\.com|youtu\.be)/")
# ---- request ---------------------------------------------------------------------------------


def _unsupported(param: str, why: str = "") -> UnsupportedParameter:
    return UnsupportedParameter(f"Unsupported parameter: '{param}' is not supported with Gemini models{why}.",
                                param=param)


def _check_params(req: ChatRequest) -> None:
    if req.logit_bias:
        raise _unsupported("logit_bias")
    for name, value in (req.model_extra or {}).items():
        if value is None or name in _DROPPED or name == "top_k":
            continue
        if name == "modalities" and value == ["text"]:
            continue
        raise _unsupported(name)


def _file_part(uri: str, mime: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"fileUri": uri}
    mime = mime or mimetypes.guess_type(uri.split("?", 1)[0])[0]
    if mime:
        data["mimeType"] = mime
    return {"fileData": data}


def _inline(media: Media) -> dict[str, Any]:
    return {"inlineData": {"mimeType": media.mime_type, "data": base64.b64encode(media.data).decode()}}


async def _media_part(url: str, ctx: CallContext, video: bool) -> dict[str, Any]:
    media = parse_data_url(url)
    if media is not None:
        return _inline(media)
    if _FILE_URI.match(url):
        return _file_part(url, None)
    if video and _YOUTUBE.match(url):
        return {"fileData": {"fileUri": url}}
    if not url.startswith(("https://", "http://")):
        raise InvalidRequest("Media URLs must be data:, https:, gs:// or Gemini file URIs.", param="messages")
    return _inline(await ctx.fetch_media(url))


async def _user_parts(msg: Any, target: Target, ctx: CallContext, i: int) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [{"text": msg.content}]
    parts: list[dict[str, Any]] = []
    for p in msg.content:
        if p.type == "text":
            parts.append({"text": p.text})
        elif p.type == "image_url":
            if not target.model.vision:
                raise InvalidRequest(f"Model '{target.requested}' does not accept images.",
                                     param=f"messages[{i}].content")
            parts.append(await _media_part(p.image_url.url, ctx, video=False))
        elif p.type == "video_url":
            if not target.model.video:
                raise InvalidRequest(f"Model '{target.requested}' does not accept video input.",
                                     param=f"messages[{i}].content")
            parts.append(await _media_part(p.video_url.url, ctx, video=True))
        elif p.type == "input_audio":
            try:
                data = base64.b64decode(p.input_audio.data, validate=True)
            except ValueError:
                raise InvalidRequest("Invalid base64 audio data.", param=f"messages[{i}].content") from None
            parts.append(_inline(Media(data, f"audio/{p.input_audio.format.lower()}")))
        elif p.type == "file":
            f = p.file
            if not f.file_data:
                raise _unsupported(f"messages[{i}].content.file.file_id", "; send file_data instead")
            media = parse_data_url(f.file_data)
            if media is None:
                try:
                    raw = base64.b64decode(f.file_data, validate=True)
                except ValueError:
                    raise InvalidRequest("Invalid base64 file data.", param=f"messages[{i}].content") from None
                mime = (mimetypes.guess_type(f.filename or "")[0]) or "application/pdf"
                media = Media(raw, mime)
            parts.append(_inline(media))
    return parts


def _tool_response(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def _call_args(arguments: str, i: int) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        args = json.loads(arguments)
    except ValueError:
        raise InvalidRequest("Tool call arguments must be a JSON object.",
                             param=f"messages[{i}].tool_calls") from None
    if not isinstance(args, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=f"messages[{i}].tool_calls")
    return args


async def _contents(req: ChatRequest, target: Target, ctx: CallContext) -> tuple[list[dict[str, Any]], list[str]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id → function name
    # Gemini 3 (thinkingLevel models) refuse a replayed call without its signature: the signature from
    # reasoning_details or the tool-call id, else Google's documented sentinel (history from elsewhere)
    signed = (target.model.reasoning or {}).get("style") == "gemini_level"
    fnames = tool_names(req, NAME_GEMINI)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        append_turn(contents, role, parts, "parts")

    for i, msg in enumerate(req.messages):
        role = msg.role
        if role in ("system", "developer"):
            system.append(content_text(msg.content))
        elif role == "user":
            add("user", await _user_parts(msg, target, ctx, i))
        elif role == "assistant":
            assert isinstance(msg, AssistantMessage)  # the role names the message type
            parts: list[dict[str, Any]] = []
            if isinstance(msg.content, list):
                text = "".join(str(getattr(p, "text", None) or getattr(p, "refusal", "") or "") for p in msg.content)
            else:
                text = msg.content or msg.refusal or ""
            if text:
                parts.append({"text": text})
            sigs = {str(d.get("id")): str(d["data"]) for d in details_of(msg, FORMAT)
                    if d.get("type") == "reasoning.encrypted" and d.get("data") and d.get("id")}
            calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
            if msg.function_call is not None:
                calls.append(("", msg.function_call.name, msg.function_call.arguments))
            for n, (cid, name, arguments) in enumerate(calls):
                names[cid] = name = wire_name(name, fnames, NAME_GEMINI)
                part: dict[str, Any] = {"functionCall": {"name": name, "args": _call_args(arguments, i)}}
                signature = sigs.get(cid) or signature_from_id(cid)
                if signature:
                    part["thoughtSignature"] = signature
                elif signed and n == 0:
                    part["thoughtSignature"] = _SKIP_SIGNATURE
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            assert isinstance(msg, ToolMessage)
            called = names.get(msg.tool_call_id)
            if called is None:
                raise InvalidRequest(
                    f"messages[{i}].tool_call_id '{msg.tool_call_id[:64]}' does not match a tool call of an "
                    "earlier assistant message.", param=f"messages[{i}].tool_call_id")
            add("user", [{"functionResponse": {"name": called, "response": _tool_response(content_text(msg.content))}}])
        elif role == "function":
            assert isinstance(msg, FunctionMessage)
            add("user", [{"functionResponse": {"name": msg.name, "response": _tool_response(msg.content or "")}}])
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message besides system messages.",
                             param="messages")
    return contents, system


def _thinking(req: ChatRequest, target: Target) -> dict[str, Any] | None:
    """thinkingConfig by the catalog row: thinkingBudget (gemini_budget) or thinkingLevel (gemini_level),
    with includeThoughts so the reasoning text comes back; `none` is budget 0 or the lowest level."""
    resolved = effort(req, target)
    if resolved is None:
        return None
    level, spec = resolved
    if spec.get("style") == "gemini_level":
        if level == "none":
            return {"thinkingLevel": lowest(spec)}
        return {"thinkingLevel": level, "includeThoughts": True}
    tokens = budget(level, spec)
    if tokens == 0:
        return {"thinkingBudget": 0}
    return {"thinkingBudget": tokens, "includeThoughts": True}


async def build_body(req: ChatRequest, target: Target, ctx: CallContext) -> dict[str, Any]:
    """The generateContent request body for an OpenAI chat request."""
    _check_params(req)
    contents, system = await _contents(req, target, ctx)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if req.tools:
        if not target.model.tools:
            raise _unsupported("tools", f" ('{target.requested}' has no tool use)")
        decls = []
        fnames = tool_names(req, NAME_GEMINI)
        for t in req.tools:
            d: dict[str, Any] = {"name": fnames[t.function.name]}
            if t.function.description:
                d["description"] = t.function.description
            if t.function.parameters:
                d["parametersJsonSchema"] = t.function.parameters
            decls.append(d)
        body["tools"] = [{"functionDeclarations": decls}]
        choice = req.tool_choice
        if choice is not None:
            if isinstance(choice, str):
                fcc: dict[str, Any] = {"mode": {"none": "NONE", "auto": "AUTO", "required": "ANY"}[choice]}
            else:
                fcc = {"mode": "ANY", "allowedFunctionNames": [wire_name(choice.function.name, fnames,
                                                                                 NAME_GEMINI)]}
            body["toolConfig"] = {"functionCallingConfig": fcc}
    gen: dict[str, Any] = {}
    for key, value in (("temperature", req.temperature), ("topP", req.top_p), ("maxOutputTokens", req.output_limit),
                       ("candidateCount", req.n), ("seed", req.seed), ("presencePenalty", req.presence_penalty),
                       ("frequencyPenalty", req.frequency_penalty), ("topK", (req.model_extra or {}).get("top_k"))):
        if value is not None:
            gen[key] = value
    if req.stop_list:
        gen["stopSequences"] = req.stop_list
    if req.logprobs:
        gen["responseLogprobs"] = True
        if req.top_logprobs:
            gen["logprobs"] = req.top_logprobs
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        if not target.model.json:
            raise _unsupported("response_format", f" ('{target.requested}' has no JSON mode)")
        gen["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.json_schema.schema_:
            gen["responseJsonSchema"] = fmt.json_schema.schema_
    thinking = _thinking(req, target)
    if thinking:
        gen["thinkingConfig"] = thinking
    if gen:
        body["generationConfig"] = gen
    return body

