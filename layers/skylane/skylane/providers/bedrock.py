"""Amazon Bedrock's Converse / ConverseStream API, through boto3's `bedrock-runtime` client.

Credentials are IAM (the role, or AWS_* variables given to the gateway), never an API key; the
region is AWS_REGION / AWS_DEFAULT_REGION and AWS_ENDPOINT_URL_BEDROCK_RUNTIME overrides the
endpoint. boto3 is synchronous: calls and the event-stream iteration run in worker threads so the
event loop never blocks. boto3's own retries are off (the router retries and falls back).

Request (OpenAI → Converse keyword arguments, in `UpstreamRequest.extra`):

| OpenAI                                 | Converse                                                        |
|----------------------------------------|-----------------------------------------------------------------|
| system / developer messages            | `system=[{text}]`, in order, wherever they appear               |
| user text / image / video / file parts | `text`, `image{format, source.bytes}`, `video` (Nova only),     |
|                                        | `document{format, name, source.bytes}`                          |
| assistant content / tool_calls         | `text` / `toolUse{toolUseId, name, input}`                      |
| tool messages                          | user `toolResult{toolUseId, content:[{text}]}`                  |
| consecutive same-role messages         | merged into one message                                         |
| max_completion_tokens / max_tokens     | `inferenceConfig.maxTokens` (the gateway default when absent)   |
| temperature, top_p, stop               | `inferenceConfig.temperature / topP / stopSequences`            |
| tools                                  | `toolConfig.tools[].toolSpec{name, description, inputSchema}`   |
| tool_choice auto / required / named    | `toolChoice {auto} / {any} / {tool: {name}}`                    |
| tool_choice none                       | no `toolConfig`; tool calls/results in the history become text  |
|                                        | (Bedrock refuses toolUse/toolResult blocks without toolConfig)  |
| response_format json_object/json_schema| a tool forced with `toolChoice.tool` whose input is the answer  |

Images come as bytes: data URLs are decoded, https URLs go through the guarded fetcher
(`ctx.fetch_media`). Tool names and tool-call ids are made to fit Bedrock's patterns, the same
way in requests and answers.

Refused with 400 `unsupported_parameter`: n > 1, logprobs / top_logprobs, logit_bias,
non-zero presence_penalty / frequency_penalty, reasoning_effort, audio input or output,
prediction, web_search_options, the legacy functions / function_call / function role, file_id.
Dropped on purpose (no Converse equivalent, harmless to ignore):

| parameter                         | why                                                         |
|-----------------------------------|-------------------------------------------------------------|
| seed                              | best effort in OpenAI too; Converse has no seed             |
| user, metadata, safety_identifier | end-user tags for OpenAI's abuse monitoring / dashboards    |
| store, service_tier, prompt_cache_key | OpenAI platform features                                |
| parallel_tool_calls               | Converse has no switch; models may return several calls     |
| stream_options                    | the gateway itself emits the usage chunk                    |
| image_url.detail, message name, function strict | no Converse field                             |
| tool result status                | OpenAI tool messages carry no error flag ("success" default)|
| other unknown top-level fields    | OpenAI passthrough fields that Bedrock cannot take          |

Answer: text blocks → content, toolUse → tool_calls (input as a JSON string), the forced JSON
tool's input → content. stopReason: end_turn / stop_sequence → stop; max_tokens /
model_context_window_exceeded → length; tool_use → tool_calls (stop when only the JSON tool
answered); guardrail_intervened / content_filtered → content_filter; malformed_model_output /
malformed_tool_use → a 502 `upstream_malformed_output` error (retryable: the output could not
be used, another attempt may succeed). Usage: Bedrock's inputTokens excludes cache reads and
writes, so prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens,
cached_tokens = cacheReadInputTokens, completion_tokens = outputTokens.

Errors (botocore ClientError codes, HTTP or mid-stream event): Throttling → 429,
ServiceUnavailable / ModelNotReady → 503, Validation → 400, AccessDenied (and other credential
errors) → 502 without AWS's text, ResourceNotFound → 404, ModelTimeout → 504,
ModelStreamError / ModelError / InternalServer → 502.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skylane.core.answer import completion, message
from skylane.core.answer import usage as make_usage
from skylane.core.errors import (
    InvalidRequest,
    SkylaneError,
    UnsupportedParameter,
    UpstreamError,
)
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
    Adapter,
    CallContext,
    Media,
    StreamTranslator,
    UpstreamRequest,
    append_turn,
    content_text,
    error_message,
    parse_data_url,
    parse_retry_after,
)
from skylane.transport.bedrock import BedrockTransport, get_client, map_code, map_exception

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["ADAPTER", "BedrockAdapter", "BedrockStream", "BedrockTransport", "build_converse", "get_client",
           "map_exception"]

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
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "tool_use": "tool_calls",
           "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
_MALFORMED = ("malformed_model_output", "malformed_tool_use")
_REFUSED_EXTRAS = ("audio", "prediction", "web_search_options", "functions", "function_call")
_JSON_TOOL_DESCRIPTION = "Give your final answer by calling this tool: its input is the answer, as JSON."


# ---- names and ids that fit Bedrock's patterns ----------------------------------------------------


def _fit(value: str, pattern: str, limit: int) -> str:
    """Replace what `pattern` forbids, and add a digest of the original so distinct values stay distinct."""
    cleaned = re.sub(pattern, "_", value)
    return cleaned[: limit - 13] + "_" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _wire_id(tool_call_id: str) -> str:
    """A tool-call id as Bedrock's toolUseId pattern allows ([a-zA-Z0-9_.:-], 64 chars)."""
    if re.fullmatch(r"[a-zA-Z0-9_.:-]{1,64}", tool_call_id):
        return tool_call_id
    return _fit(tool_call_id, r"[^a-zA-Z0-9_.:-]", 64)


def _wire_name(name: str) -> str:
    if re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
        return name
    return _fit(name, r"[^a-zA-Z0-9_-]", 64)


def _tool_names(req: ChatRequest) -> dict[str, str]:
    """The request's function names → the names sent to Bedrock (unique, pattern-safe)."""
    return {t.function.name: _wire_name(t.function.name) for t in req.tools or []}


def _json_tool_name(req: ChatRequest) -> str | None:
    rf = req.response_format
    if rf is None or rf.type == "text":
        return None
    base = _wire_name(rf.json_schema.name) if rf.type == "json_schema" else "json_response"
    taken = set(_tool_names(req).values())
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
    if req.reasoning_effort is not None:
        raise refuse("reasoning_effort", "'reasoning_effort'")
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
        return [{"text": msg.content}] if msg.content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(msg.content):
        param = f"messages[{i}].content[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(await _image_block(part.image_url.url, target, ctx, param))
        elif isinstance(part, VideoPart):
            blocks.append(await _video_block(part.video_url.url, target, ctx, param))
        elif isinstance(part, FilePart):
            blocks.append(_document_block(part, param, f"document {i}-{j}"))
        else:
            raise UnsupportedParameter("Audio input is not supported by Amazon Bedrock (Converse).", param=param)
    return blocks


def _assistant_blocks(msg: AssistantMessage, i: int, names: dict[str, str], flatten: bool) -> list[dict[str, Any]]:
    if isinstance(msg.content, list):
        text = "".join(getattr(p, "text", None) or getattr(p, "refusal", "") for p in msg.content)
    else:
        text = msg.content or ""
    blocks: list[dict[str, Any]] = [{"text": text}] if text else []
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


async def _messages(
    req: ChatRequest, target: Target, ctx: CallContext, names: dict[str, str], flatten: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        append_turn(out, role, blocks, "content")

    for i, msg in enumerate(req.messages):
        if isinstance(msg, SystemMessage | DeveloperMessage):
            text = content_text(msg.content)
            if text.strip():
                system.append({"text": text})
        elif isinstance(msg, UserMessage):
            add("user", await _user_blocks(msg, i, target, ctx))
        elif isinstance(msg, AssistantMessage):
            add("assistant", _assistant_blocks(msg, i, names, flatten))
        elif isinstance(msg, ToolMessage):
            add("user", [_tool_result(msg, flatten)])
        else:
            raise UnsupportedParameter("The legacy 'function' role is not supported by Bedrock; use tools.",
                                       param=f"messages[{i}].role")
    if not out:
        raise InvalidRequest("Bedrock needs at least one user or assistant message with content.", param="messages")
    return system, out


def _tool_config(req: ChatRequest, names: dict[str, str], json_name: str | None) -> dict[str, Any] | None:
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
    names = _tool_names(req)
    json_name = _json_tool_name(req)
    tool_config = _tool_config(req, names, json_name)
    system, messages = await _messages(req, target, ctx, names, flatten=tool_config is None)
    inference: dict[str, Any] = {"maxTokens": req.output_limit or ctx.default_max_tokens}
    if req.temperature is not None:
        inference["temperature"] = req.temperature
    if req.top_p is not None:
        inference["topP"] = req.top_p
    stops = [s for s in req.stop_list if s]
    if stops:
        inference["stopSequences"] = stops
    kwargs: dict[str, Any] = {"modelId": target.upstream_model, "messages": messages, "inferenceConfig": inference}
    if system:
        kwargs["system"] = system
    if tool_config is not None:
        kwargs["toolConfig"] = tool_config
    return kwargs


# ---- answers --------------------------------------------------------------------------------------


def _usage(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    read = raw.get("cacheReadInputTokens")
    written = raw.get("cacheWriteInputTokens")
    prompt = int(raw.get("inputTokens") or 0) + int(read or 0) + int(written or 0)
    return make_usage(prompt, int(raw.get("outputTokens") or 0), cached=int(read) if read is not None else None)


def _finish(reason: Any, has_calls: bool, provider: str) -> str:
    if reason in _MALFORMED:
        raise UpstreamError(f"Provider '{provider}' stopped with '{reason}': the model's output could not be used.",
                            provider=provider, code="upstream_malformed_output")
    finish = _FINISH.get(str(reason), "stop")
    if finish == "tool_calls" and not has_calls:
        return "stop"  # only the JSON tool answered
    return finish


def _tool_call(use: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    name = str(use.get("name", ""))
    return {"id": str(use.get("toolUseId", "")), "type": "function",
            "function": {"name": names.get(name, name), "arguments": json.dumps(use.get("input") or {})}}


def parse_converse(data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
    provider = target.provider.name
    names = {wire: orig for orig, wire in _tool_names(req).items()}
    json_name = _json_tool_name(req)
    msg = (data.get("output") or {}).get("message")
    if not isinstance(msg, Mapping):
        raise UpstreamError(f"Provider '{provider}' answered without a message.", provider=provider)
    texts: list[str] = []
    answers: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            if json_name is not None and use.get("name") == json_name:
                answers.append(json.dumps(use.get("input") or {}))
            else:
                calls.append(_tool_call(use, names))
    text = "".join(answers) if answers else "".join(texts)
    finish = _finish(data.get("stopReason"), bool(calls), provider)
    content = text if (text or not calls) else None
    choice = {"index": 0, "message": message(content, calls or None), "finish_reason": finish}
    return completion(model=target.requested, choices=[choice], usage=_usage(data.get("usage")))


class BedrockStream(StreamTranslator):
    """ConverseStream events (boto3's parsed dicts) → OpenAI chunks.

    Text blocks have no contentBlockStart; a toolUse block starts with one. Tool calls get dense
    indexes from 0 whatever their contentBlockIndex. The finish reason (messageStop) is held until
    `metadata` brings the usage, which ends the stream.
    """

    def __init__(self, provider: str, names: dict[str, str], json_name: str | None) -> None:
        self.provider = provider
        self.usage: dict[str, Any] | None = None
        self.done = False
        self._names = names  # wire → original
        self._json_name = json_name
        self._role_sent = False
        self._tools: dict[int, int] = {}  # contentBlockIndex → tool_calls index
        self._args_seen: set[int] = set()
        self._json_blocks: set[int] = set()
        self._stop: Any = None
        self._finish_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def _args(self, tool: int, fragment: str) -> dict[str, Any]:
        return self._chunk({"tool_calls": [{"index": tool, "function": {"arguments": fragment}}]})

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if not isinstance(event, Mapping):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.", provider=self.provider)
        for key, body in event.items():
            if key.endswith("Exception"):
                text = body.get("message", "") if isinstance(body, Mapping) else ""
                raise map_code(key, str(text), None, self.provider)
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if not use:
                return []
            block = int(start.get("contentBlockIndex", 0))
            if self._json_name is not None and use.get("name") == self._json_name:
                self._json_blocks.add(block)
                return []
            tool = self._tools[block] = len(self._tools)
            call = _tool_call({**use, "input": None}, self._names)
            call["function"]["arguments"] = ""
            return [self._chunk({"tool_calls": [{"index": tool, **call}]})]
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            block = int(body.get("contentBlockIndex", 0))
            delta = body.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})] if delta["text"] else []
            fragment = (delta.get("toolUse") or {}).get("input")
            if fragment:
                if block in self._json_blocks:
                    return [self._chunk({"content": fragment})]
                if block in self._tools:
                    self._args_seen.add(block)
                    return [self._args(self._tools[block], fragment)]
            return []  # reasoning, citations and other block kinds are not part of the OpenAI answer
        if "contentBlockStop" in event:
            block = int(event["contentBlockStop"].get("contentBlockIndex", 0))
            if block in self._tools and block not in self._args_seen:
                self._args_seen.add(block)
                return [self._args(self._tools[block], "{}")]  # a call without input still has valid JSON
            return []
        if "messageStop" in event:
            self._stop = event["messageStop"].get("stopReason")
            _finish(self._stop, bool(self._tools), self.provider)  # raises on malformed output
            return []
        if "metadata" in event:
            self.usage = _usage(event["metadata"].get("usage"))
            if self._stop is None:
                return []
            self.done = True
            return self.finish()
        return []  # messageStart and future event kinds

    def finish(self) -> list[dict[str, Any]]:
        if self._stop is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk({}, _finish(self._stop, bool(self._tools), self.provider))]



class BedrockAdapter(Adapter):
    protocol = "bedrock"
    uses_base_url = False  # boto3 finds the endpoint (AWS_ENDPOINT_URL_BEDROCK_RUNTIME or the region)

    def __init__(self) -> None:
        self.transport = BedrockTransport()

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        kwargs = await build_converse(req, target, ctx)
        # no HTTP here: `url` only names the provider and model (for errors and logs)
        return UpstreamRequest(url=f"bedrock://{target.provider.name}/{target.upstream_model}", headers={},
                               body={}, extra=kwargs)

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        return parse_converse(data, req, target)

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        names = {wire: orig for orig, wire in _tool_names(req).items()}
        return BedrockStream(target.provider.name, names, _json_tool_name(req))

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        message, data = error_message(body, f"upstream returned HTTP {status}")
        code = (headers.get("x-amzn-errortype") or str(data.get("__type") or "")).split(":", 1)[0].split("#")[-1]
        return map_code(code, message, status, provider, parse_retry_after(headers))


ADAPTER = BedrockAdapter()
