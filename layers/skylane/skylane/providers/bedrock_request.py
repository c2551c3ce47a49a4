"""Bedrock Converse: the request keyword arguments for an OpenAI chat request (see bedrock.py)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UnsupportedParameter
from skylane.core.request import (
    AssistantMessage,
    DeveloperMessage,
    FilePart,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    VideoPart,
)
from skylane.providers.base import (
    NAME_BEDROCK,
    CallContext,
    Media,
    append_turn,
    content_text,
    fit_value,
    parse_data_url,
)
from skylane.providers.base import tool_names as shared_tool_names
from skylane.providers.bedrock_reasoning import Reasoning, cache_point, reasoning_blocks, sampling
from skylane.providers.reasoning import blank, original_id

__all__ = ["build_converse", "json_tool_name", "tool_names"]

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}
_VIDEO_FORMATS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/x-matroska": "mkv", "video/webm": "webm",
                  "video/x-flv": "flv", "video/mpeg": "mpeg", "video/mpg": "mpg", "video/x-ms-wmv": "wmv",
                  "video/3gpp": "three_gp"}
_DOC_FORMATS = {"application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                "application/vnd.ms-excel": "xls",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
                "text/html": "html", "text/plain": "txt", "text/markdown": "md"}
_DOC_EXTENSIONS = {v: v for v in _DOC_FORMATS.values()} | {"htm": "html", "markdown": "md"}
_REFUSED_EXTRAS = ("audio", "prediction", "web_search_options", "functions", "function_call")
_JSON_TOOL_DESCRIPTION = "Give your final answer by calling this tool: its input is the answer, as JSON."
# ---- names and ids that fit Bedrock's patterns ----------------------------------------------------


def _wire_id(tool_call_id: str) -> str:
    """A tool-call id as Bedrock's toolUseId pattern allows ([a-zA-Z0-9_.:-], 64 chars)."""
    return fit_value(original_id(tool_call_id), "a-zA-Z0-9_.:-", 64)


def _wire_name(name: str) -> str:
    return fit_value(name, *NAME_BEDROCK)


def tool_names(req: ChatRequest) -> dict[str, str]:
    """The request's function names → the names sent to Bedrock (unique, pattern-safe)."""
    return shared_tool_names(req, NAME_BEDROCK)


def json_tool_name(req: ChatRequest) -> str | None:
    rf = req.response_format
    if rf is None or rf.type == "text":
        return None
    base = _wire_name(rf.json_schema.name) if rf.type == "json_schema" else "json_response"
    taken = set(tool_names(req).values())
    name = base
    while name in taken:
        name = _wire_name("json_response_" + name)[:64]
    return name


# ---- request --------------------------------------------------------------------------------------


def _check_params(req: ChatRequest, target: Target) -> None:
    def refuse(param: str, what: str) -> UnsupportedParameter:
        return UnsupportedParameter(f"{what} is not supported by Amazon Bedrock (Converse).", param=param)

    if req.n not in (None, 1):
        raise refuse("n", "More than one choice ('n' > 1)")
    if req.logprobs or req.top_logprobs:
        raise refuse("logprobs" if req.logprobs else "top_logprobs", "Log probabilities")
    if req.logit_bias:
        raise refuse("logit_bias", "'logit_bias'")
    if req.presence_penalty:
        raise refuse("presence_penalty", "'presence_penalty'")
    if req.frequency_penalty:
        raise refuse("frequency_penalty", "'frequency_penalty'")
    extra = req.model_extra or {}
    for name in _REFUSED_EXTRAS:
        if extra.get(name) is not None:
            raise refuse(name, f"'{name}'")
    modalities = extra.get("modalities")
    if isinstance(modalities, list) and set(modalities) - {"text"}:
        raise refuse("modalities", "Output other than text")
    if req.tools and not target.model.tools:
        raise UnsupportedParameter(f"Model '{target.requested}' does not support tools.", param="tools")
    if req.response_format is not None and req.response_format.type != "text" and not target.model.json:
        raise UnsupportedParameter(f"Model '{target.requested}' does not support JSON output.",
                                   param="response_format")


def _video_allowed(target: Target) -> bool:
    if target.model.in_catalog:
        return target.model.video
    return "nova" in target.upstream_model.lower()  # on Bedrock's Converse, only Amazon Nova takes video


async def _media(url: str, ctx: CallContext) -> Media:
    return parse_data_url(url) or await ctx.fetch_media(url)


async def _image_block(url: str, target: Target, ctx: CallContext, param: str) -> dict[str, Any]:
    if not target.model.vision:
        raise UnsupportedParameter(f"Model '{target.requested}' does not accept image input.", param=param)
    media = await _media(url, ctx)
    fmt = _IMAGE_FORMATS.get(media.mime_type)
    if fmt is None:
        raise InvalidRequest(f"Image type '{media.mime_type[:64]}' is not supported by Bedrock "
                             "(png, jpeg, gif or webp).", param=param, code="invalid_image_format")
    return {"image": {"format": fmt, "source": {"bytes": media.data}}}


async def _video_block(url: str, target: Target, ctx: CallContext, param: str) -> dict[str, Any]:
    if not _video_allowed(target):
        raise UnsupportedParameter(f"Model '{target.requested}' does not accept video input "
                                   "(on Bedrock, only Amazon Nova models do).", param=param)
    if url.startswith("gs://"):
        raise InvalidRequest("gs:// video URLs are for Gemini; Bedrock takes data URLs or https URLs.", param=param)
    media = await _media(url, ctx)
    fmt = _VIDEO_FORMATS.get(media.mime_type)
    if fmt is None:
        raise InvalidRequest(f"Video type '{media.mime_type[:64]}' is not supported by Bedrock.", param=param)
    return {"video": {"format": fmt, "source": {"bytes": media.data}}}


def _document_block(part: FilePart, param: str, fallback_name: str) -> dict[str, Any]:
    f = part.file
    if not f.file_data:
        raise UnsupportedParameter("Files by 'file_id' are not supported by Bedrock; send 'file_data'.",
                                   param=param + ".file.file_id")
    filename = f.filename or ""
    stem, _, ext = filename.rpartition(".") if "." in filename else (filename, "", "")
    media = parse_data_url(f.file_data)
    if media is None:
        try:
            media = Media(data=base64.b64decode(f.file_data, validate=True), mime_type="")
        except (binascii.Error, ValueError):
            raise InvalidRequest("'file_data' must be base64 (or a data URL).", param=param + ".file.file_data") \
                from None
    fmt = _DOC_FORMATS.get(media.mime_type) or _DOC_EXTENSIONS.get(ext.lower())
    if fmt is None:
        raise InvalidRequest("Bedrock documents must be pdf, csv, doc, docx, xls, xlsx, html, txt or md.",
                             param=param + ".file")
    # names may hold only letters, digits, single spaces, hyphens, parentheses and square brackets
    name = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9\s\-()\[\]]", " ", stem)).strip()[:200] or fallback_name
    return {"document": {"format": fmt, "name": name, "source": {"bytes": media.data}}}


async def _user_blocks(msg: UserMessage, i: int, target: Target, ctx: CallContext) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [] if blank(msg.content) else [{"text": msg.content}]
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(msg.content):
        param = f"messages[{i}].content[{j}]"
        if isinstance(part, TextPart):
            if not blank(part.text):
                blocks.append({"text": part.text})
            else:
                continue
        elif isinstance(part, ImagePart):
            blocks.append(await _image_block(part.image_url.url, target, ctx, param))
        elif isinstance(part, VideoPart):
            blocks.append(await _video_block(part.video_url.url, target, ctx, param))
        elif isinstance(part, FilePart):
            blocks.append(_document_block(part, param, f"document {i}-{j}"))
        else:
            raise UnsupportedParameter("Audio input is not supported by Amazon Bedrock (Converse).", param=param)
        point = cache_point(part, target)
        if point is not None:
            blocks.append(point)
    return blocks


def _assistant_blocks(msg: AssistantMessage, i: int, names: dict[str, str], flatten: bool,
                      thinking: bool) -> list[dict[str, Any]]:
    if isinstance(msg.content, list):
        text = "".join(str(getattr(p, "text", None) or getattr(p, "refusal", None) or "") for p in msg.content)
    else:
        text = msg.content or msg.refusal or ""  # a refusal-only answer stays in the history
    # signed reasoning first (restored only when thinking is on), then the text
    blocks: list[dict[str, Any]] = reasoning_blocks(msg) if thinking and not flatten else []
    if not blank(text):
        blocks.append({"text": text})
    for k, call in enumerate(msg.tool_calls or []):
        raw = call.function.arguments
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidRequest(f"The arguments of tool call '{call.id[:64]}' are not valid JSON.",
                                 param=f"messages[{i}].tool_calls[{k}].function.arguments") from None
        name = call.function.name
        if flatten:
            blocks.append({"text": f"[called tool {name} with {json.dumps(args)}]"})
        else:
            blocks.append({"toolUse": {"toolUseId": _wire_id(call.id), "name": names.get(name) or _wire_name(name),
                                       "input": args}})
    return blocks


def _tool_result(msg: ToolMessage, flatten: bool) -> dict[str, Any]:
    text = content_text(msg.content)
    if flatten:
        return {"text": f"[result of tool call {msg.tool_call_id}: {text}]"}
    return {"toolResult": {"toolUseId": _wire_id(msg.tool_call_id), "content": [{"text": text or "(no output)"}]}}


def _system_blocks(msg: SystemMessage | DeveloperMessage, target: Target) -> list[dict[str, Any]]:
    if isinstance(msg.content, str):
        return [] if blank(msg.content) else [{"text": msg.content}]
    blocks: list[dict[str, Any]] = []
    for part in msg.content:
        if not blank(part.text):
            blocks.append({"text": part.text})
            point = cache_point(part, target)
            if point is not None:
                blocks.append(point)
    return blocks


def _with_point(blocks: list[dict[str, Any]], msg: Any, target: Target) -> list[dict[str, Any]]:
    """A message's own breakpoint: a cachePoint after its last block."""
    point = cache_point(msg, target)
    if point is not None and blocks and "cachePoint" not in blocks[-1]:
        blocks.append(point)
    return blocks


async def _messages(
    req: ChatRequest, target: Target, ctx: CallContext, names: dict[str, str], flatten: bool, thinking: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]], msg: Any) -> None:
        append_turn(out, role, _with_point(blocks, msg, target), "content")

    for i, msg in enumerate(req.messages):
        if isinstance(msg, SystemMessage | DeveloperMessage):
            system.extend(_with_point(_system_blocks(msg, target), msg, target))
        elif isinstance(msg, UserMessage):
            add("user", await _user_blocks(msg, i, target, ctx), msg)
        elif isinstance(msg, AssistantMessage):
            add("assistant", _assistant_blocks(msg, i, names, flatten, thinking), msg)
        elif isinstance(msg, ToolMessage):
            add("user", [_tool_result(msg, flatten)], msg)
        else:
            raise UnsupportedParameter("The legacy 'function' role is not supported by Bedrock; use tools.",
                                       param=f"messages[{i}].role")
    if not out:
        raise InvalidRequest("Bedrock needs at least one user or assistant message with content.", param="messages")
    return system, out


def _tool_config(req: ChatRequest, names: dict[str, str], json_name: str | None,
                 target: Target) -> dict[str, Any] | None:
    choice = req.tool_choice
    send_tools = bool(req.tools) and choice != "none"
    tools: list[dict[str, Any]] = []
    if send_tools:
        for tool in req.tools or []:
            fn = tool.function
            spec: dict[str, Any] = {"name": names[fn.name],
                                    "inputSchema": {"json": fn.parameters or {"type": "object", "properties": {}}}}
            if fn.description:
                spec["description"] = fn.description
            tools.append({"toolSpec": spec})
            point = cache_point(tool, target)
            if point is not None:
                tools.append(point)
    if json_name is not None:
        rf = req.response_format
        schema: dict[str, Any] = {"type": "object"}
        description = _JSON_TOOL_DESCRIPTION
        if rf is not None and rf.type == "json_schema":
            schema = rf.json_schema.schema_ or schema
            if rf.json_schema.description:
                description = f"{rf.json_schema.description} {_JSON_TOOL_DESCRIPTION}"
        tools.append({"toolSpec": {"name": json_name, "description": description, "inputSchema": {"json": schema}}})
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    if send_tools and choice is not None and not isinstance(choice, str):
        wanted = choice.function.name
        if wanted not in names:
            raise InvalidRequest(f"tool_choice names '{wanted[:64]}', which is not in 'tools'.", param="tool_choice")
        config["toolChoice"] = {"tool": {"name": names[wanted]}}
    elif json_name is not None:
        # the answer must come through a tool: the JSON one (or one of the caller's tools)
        config["toolChoice"] = {"any": {}} if send_tools else {"tool": {"name": json_name}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


async def build_converse(req: ChatRequest, target: Target, ctx: CallContext) -> dict[str, Any]:
    """The keyword arguments of `converse` / `converse_stream` for this request."""
    _check_params(req, target)
    names = tool_names(req)
    json_name = json_tool_name(req)
    tool_config = _tool_config(req, names, json_name, target)
    why = Reasoning(req, target, ctx.default_max_tokens)
    system, messages = await _messages(req, target, ctx, names, flatten=tool_config is None, thinking=why.on)
    inference: dict[str, Any] = {"maxTokens": why.max_tokens}
    sampling(req, target, why, inference)
    stops = [s for s in req.stop_list if s]
    if stops:
        inference["stopSequences"] = stops
    kwargs: dict[str, Any] = {"modelId": target.upstream_model, "messages": messages, "inferenceConfig": inference}
    if system:
        kwargs["system"] = system
    if tool_config is not None:
        kwargs["toolConfig"] = tool_config
    if why.fields:
        kwargs["additionalModelRequestFields"] = why.fields
    return kwargs

