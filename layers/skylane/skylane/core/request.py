"""OpenAI chat completions: the request models (pydantic) and the response/chunk builders.

Requests are validated into `ChatRequest`; unknown top-level fields are kept (`model_extra`) so
OpenAI-compatible providers receive them untouched. Responses and chunks are plain dicts built
here so every adapter emits the same spec-conformant shape (`refusal`, `logprobs`,
`finish_reason` always present).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from skylane.core.errors import InvalidRequest

__all__ = [
    "MAX_MESSAGES",
    "AssistantMessage",
    "ChatRequest",
    "ContentPart",
    "DeveloperMessage",
    "FilePart",
    "FunctionDef",
    "ImagePart",
    "InputAudioPart",
    "Message",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
    "VideoPart",
    "integral_fields",
    "parse_request",
    "with_model",
]

MAX_MESSAGES = 4096
MAX_TOKENS_CAP = 10_000_000
MAX_JSON_DEPTH = 64


def _integral(value: Any) -> Any:
    """JSON has one number type: 18.0 is the integer 18 (as JSON Schema says); 18.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# integer fields that also take integral floats (constraints before the validator: they stay in the JSON schema)
_Integral = BeforeValidator(_integral)
Int = Annotated[int, _Integral]
TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS_CAP), _Integral]
ChoiceCount = Annotated[int, Field(ge=1, le=128), _Integral]
TopLogprobs = Annotated[int, Field(ge=0, le=20), _Integral]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=False, strict=True)  # no coercion: "1" is not 1, 0 not false


# ---- content parts -------------------------------------------------------------------------


# a cache breakpoint after this part / message / tool: {"type": "ephemeral", "ttl"?: "5m" | "1h"}
# (OpenRouter / Anthropic convention), or OpenAI's prompt_cache_breakpoint {"mode": "explicit", "ttl"?}
CacheMark = dict[str, Any] | None


class TextPart(_Model):
    type: Literal["text"]
    text: str
    cache_control: CacheMark = None
    prompt_cache_breakpoint: CacheMark = None


# a data URL is `data:<type>;base64,<standard base64>` (what every adapter can decode)
_DATA_URL = r"data:[^,]*;base64,(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class ImageURL(_Model):
    url: Annotated[str, Field(min_length=1, pattern=rf"^(https?://|gs://|{_DATA_URL})")]
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL
    cache_control: CacheMark = None
    prompt_cache_breakpoint: CacheMark = None


class InputAudio(_Model):
    data: str
    format: str


class InputAudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Model):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Model):
    type: Literal["file"]
    file: FileData
    cache_control: CacheMark = None
    prompt_cache_breakpoint: CacheMark = None


class VideoURL(_Model):
    url: Annotated[str, Field(min_length=1, pattern=rf"^(https?://|gs://|{_DATA_URL})")]


class VideoPart(_Model):
    type: Literal["video_url"]
    video_url: VideoURL


class RefusalPart(_Model):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    TextPart | ImagePart | InputAudioPart | FilePart | VideoPart, Field(discriminator="type")
]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


# ---- messages --------------------------------------------------------------------------------


class FunctionCall(_Model):
    name: str
    arguments: str


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Model):
    role: Literal["system"]
    cache_control: CacheMark = None
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Model):
    role: Literal["developer"]
    cache_control: CacheMark = None
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Model):
    role: Literal["user"]
    cache_control: CacheMark = None
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Model):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None
    function_call: FunctionCall | None = None
    # reasoning the gateway returned with this message, echoed back by clients (OpenRouter's fields):
    # reasoning_details items carry Anthropic thinking signatures / Gemini thought signatures
    reasoning_content: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    cache_control: CacheMark = None


class ToolMessage(_Model):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str
    cache_control: CacheMark = None


class FunctionMessage(_Model):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


# ---- tools and formats -----------------------------------------------------------------------


class FunctionDef(_Model):
    # any printable name (MCP-style "server.tool", spaces): adapters map names outside a provider's
    # pattern reversibly (providers/base.py ToolNames)
    name: Annotated[str, Field(pattern=r"^[^\x00-\x1f]{1,256}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Model):
    type: Literal["function"]
    function: FunctionDef
    cache_control: CacheMark = None


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(_Model):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")]
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class ResponseFormatText(_Model):
    type: Literal["text"]


class ResponseFormatJSONObject(_Model):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(_Model):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema, Field(discriminator="type")
]


class StreamOptions(_Model):
    include_usage: bool | None = None


# ---- the request -----------------------------------------------------------------------------


class ChatRequest(_Model):
    model: str | None = None
    messages: Annotated[list[Message], Field(max_length=MAX_MESSAGES)]
    # gateway-only: fallback models, tried in order after `model` (OpenRouter style)
    models: Annotated[list[str] | None, Field(max_length=8)] = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    n: ChoiceCount | None = None
    seed: Int | None = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: Annotated[list[Tool] | None, Field(max_length=512)] = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    # prompt caching (OpenAI): passed to providers that take them, dropped elsewhere
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    # the body as the client sent it (model filled in), for faithful passthrough
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    # the body in the wire format of the dialect it came in (None: the chat-completions body itself),
    # for native passthrough to a provider that speaks that dialect
    _wire: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def wire(self) -> dict[str, Any]:
        return self._raw if self._wire is None else self._wire

    @property
    def output_limit(self) -> int | None:
        """The caller's cap on output tokens (max_completion_tokens wins over max_tokens)."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


_request_adapter: TypeAdapter[ChatRequest] = TypeAdapter(ChatRequest)


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether nothing in `value` is nested deeper than `limit` (the top level is 0): walked a level at
    a time, containers only."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            if children and depth >= limit:
                return False
            below.extend(v for v in children if isinstance(v, dict | list))
        level = below
        depth += 1
    return True


_ROLE_TAGS = {"system", "developer", "user", "assistant", "tool", "function"}
_PART_TAGS = {"text", "image_url", "input_audio", "file", "video_url", "refusal"}
_FORMAT_TAGS = {"text", "json_object", "json_schema"}
_LABEL_PREFIXES = ("list[", "dict[", "literal[", "function-", "nullable[", "union[", "tagged-union[", "constrained-")


def _is_label(part: str) -> bool:
    """pydantic's names for union branches, which are not fields."""
    return part in ("str", "int", "float", "bool", "dict", "list") or part.startswith(_LABEL_PREFIXES) or (
        part[:1].isupper()
    )


def _param(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as an OpenAI-style param: messages[0].content[1].image_url.url."""
    out = ""
    last_field = ""
    after_index = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            after_index = True
            continue
        if _is_label(part):
            continue
        if after_index and (
            (last_field == "messages" and part in _ROLE_TAGS) or (last_field == "content" and part in _PART_TAGS)
        ):
            after_index = False
            continue
        if last_field == "response_format" and part in _FORMAT_TAGS and out.endswith("response_format"):
            continue
        out += f".{part}" if out else str(part)
        last_field = part
        after_index = False
    return out or "body"


def _validation_error(exc: ValidationError) -> InvalidRequest:
    errors = exc.errors(include_url=False)
    # prefer the most specific error (longest location); a union produces one per branch
    first = max(errors, key=lambda e: len(e["loc"])) if errors else None
    if first is None:
        return InvalidRequest("Invalid request body")
    param = _param(tuple(first["loc"]))
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        disc = str(first.get("ctx", {}).get("discriminator", "")).strip("'")
        param = f"{param}.{disc}" if disc else param
        expected = first.get("ctx", {}).get("expected_tags", "")
        tag = first.get("ctx", {}).get("tag")
        if tag is None:
            msg = f"Missing required parameter: '{param}'."
        else:
            msg = f"Invalid value for '{param}': {str(tag)[:64]!r}. Supported values are: {expected}."
    elif first["type"] == "missing":
        msg = f"Missing required parameter: '{param}'."
    elif first["type"] == "extra_forbidden":
        msg = f"Unrecognized request argument supplied: {param}"
    else:
        msg = f"Invalid value for '{param}': {first['msg']}."
    return InvalidRequest(msg, param=param, code="invalid_value")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_request(body: bytes | str | dict[str, Any], default_model: str | None = None) -> ChatRequest:
    """Parse and validate a chat completions body; raise InvalidRequest naming the field."""
    if isinstance(body, dict):
        data: Any = body
    else:
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except RecursionError:
            raise InvalidRequest("The request body is nested too deeply.", code="invalid_json") from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The body must be valid JSON.",
                code="invalid_json",
            ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if not _depth_ok(data, MAX_JSON_DEPTH):
        raise InvalidRequest(
            f"The request body is nested too deeply (more than {MAX_JSON_DEPTH} levels).", code="invalid_json"
        )
    data = with_model(data, default_model)
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages", code="missing_required")
    if isinstance(messages, list) and not messages:
        raise InvalidRequest("Messages array cannot be empty", param="messages", code="empty_array")
    if isinstance(messages, list) and len(messages) > MAX_MESSAGES:
        raise InvalidRequest(
            f"Too many messages: {len(messages)} (at most {MAX_MESSAGES}).", param="messages", code="invalid_value"
        )
    try:
        req = _request_adapter.validate_python(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    req._raw = integral_fields(data, req)
    return req


def with_model(data: dict[str, Any], default_model: str | None) -> dict[str, Any]:
    """The body with its model: the one it names, else the gateway's default; a 400 when neither."""
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("Invalid value for 'model': expected a string.", param="model", code="invalid_value")
    if model:
        return data
    if not default_model:
        raise InvalidRequest("You must specify a model to call", param="model", code="missing_model")
    return {**data, "model": default_model}


def integral_fields(data: dict[str, Any], req: BaseModel) -> dict[str, Any]:
    """The body as it goes upstream, with the integers the gateway accepted as integral floats (`318.0`)
    written as integers: a provider that is strict about them sees what the gateway validated."""
    fixed = {k: int(v) for k, v in data.items() if isinstance(v, float) and type(getattr(req, k, None)) is int}
    return {**data, **fixed} if fixed else data
