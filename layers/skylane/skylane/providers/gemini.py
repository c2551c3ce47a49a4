"""Google Gemini (Generative Language API, v1beta generateContent / streamGenerateContent).

Requests go to `{base}/v1beta/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`)
with the key in `x-goog-api-key`, never in the URL. Choices made here:

- Schemas are passed as JSON Schema, untouched: tools use `parametersJsonSchema` and
  `json_schema` answers use `responseJsonSchema` (both documented alternatives to the
  OpenAPI-subset `parameters` / `responseSchema`), so `$ref`, `anyOf`, `additionalProperties`
  … reach the model instead of being lossily converted.
- system and developer messages, wherever they appear, are merged into `systemInstruction`.
- Thought parts (`thought: true`) are never copied into answers; their tokens are counted in
  `completion_tokens` and reported as `reasoning_tokens`.
- Tool-call ids are synthesised (Gemini has none); a tool message's function name is recovered
  from the earlier assistant tool call with that id. Gemini 3 models reject replayed function
  calls without a `thoughtSignature`; as the gateway keeps no state, replayed calls to those
  models carry Google's documented `skip_thought_signature_validator` sentinel.
- A prompt blocked by `promptFeedback.blockReason` (no candidates) is answered with one empty
  choice whose finish_reason is `content_filter`.
- MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS and
  MISSING_THOUGHT_SIGNATURE mean the model produced no usable answer: they raise a 502
  UpstreamError (retryable, so the router may try again or fall back).

OpenAI parameters dropped on purpose (no effect on the generated answer, or nothing to map to):

| parameter                                                  | why                                  |
|------------------------------------------------------------|--------------------------------------|
| user, metadata, store, safety_identifier, prompt_cache_key | bookkeeping only                     |
| service_tier                                               | Gemini has no per-request tiers      |
| parallel_tool_calls                                        | Gemini has no switch; it decides     |
| stream_options                                             | the gateway writes the usage chunk   |
| modalities (only ["text"])                                 | text is the only output anyway       |
| image_url.detail, function.strict, json_schema.name/strict | no Gemini equivalent                 |

Any other parameter with no Gemini meaning (logit_bias, functions, audio, prediction, …) is
refused with 400 unsupported_parameter. Extras accepted: `top_k` → topK; `reasoning_effort` →
thinkingConfig (thinkingLevel on Gemini 3, thinkingBudget otherwise).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from skylane.core.answer import completion, message, usage
from skylane.core.errors import (
    InvalidRequest,
    ModelNotFound,
    SkylaneError,
    UnsupportedParameter,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from skylane.providers.base import (
    Adapter,
    CallContext,
    Media,
    StreamTranslator,
    UpstreamRequest,
    append_turn,
    classify_status,
    content_text,
    new_tool_call_id,
    parse_data_url,
    parse_retry_after,
)
from skylane.transport.sse import SSEEvent

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["ADAPTER", "FINISH_REASONS", "GeminiAdapter", "GeminiStream", "build_body", "gemini_usage"]

# Gemini finishReason → OpenAI finish_reason; STOP becomes tool_calls when the candidate called a
# function. Reasons in _FAILED raise instead. Unknown (future) reasons read as "stop".
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "NO_IMAGE": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "LANGUAGE": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "IMAGE_OTHER": "content_filter",
    "OTHER": "content_filter",
}
_FAILED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE"}

_DROPPED = {"user", "metadata", "store", "safety_identifier", "prompt_cache_key", "service_tier",
            "parallel_tool_calls", "stream_options"}
_EFFORT_BUDGET = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_EFFORT_LEVEL = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_SKIP_SIGNATURE = "skip_thought_signature_validator"
_FILE_URI = re.compile(r"^(gs://|https://generativelanguage\.googleapis\.com/)")
_YOUTUBE = re.compile(r"^https?://(www\.|m\.)?(youtube\.com|youtu\.be)/")
_RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


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
    signed = target.upstream_model.startswith("gemini-3")

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        append_turn(contents, role, parts, "parts")

    for i, msg in enumerate(req.messages):
        role = msg.role
        if role in ("system", "developer"):
            system.append(content_text(msg.content))
        elif role == "user":
            add("user", await _user_parts(msg, target, ctx, i))
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            if isinstance(msg.content, list):
                text = "".join(getattr(p, "text", None) or getattr(p, "refusal", "") for p in msg.content)
            else:
                text = msg.content or msg.refusal or ""
            if text:
                parts.append({"text": text})
            calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
            if msg.function_call is not None:
                calls.append(("", msg.function_call.name, msg.function_call.arguments))
            for n, (cid, name, arguments) in enumerate(calls):
                names[cid] = name
                part: dict[str, Any] = {"functionCall": {"name": name, "args": _call_args(arguments, i)}}
                if signed and n == 0:
                    part["thoughtSignature"] = _SKIP_SIGNATURE
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            name = names.get(msg.tool_call_id)
            if name is None:
                raise InvalidRequest(
                    f"messages[{i}].tool_call_id '{msg.tool_call_id[:64]}' does not match a tool call of an "
                    "earlier assistant message.", param=f"messages[{i}].tool_call_id")
            add("user", [{"functionResponse": {"name": name, "response": _tool_response(content_text(msg.content))}}])
        elif role == "function":
            add("user", [{"functionResponse": {"name": msg.name, "response": _tool_response(msg.content or "")}}])
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message besides system messages.",
                             param="messages")
    return contents, system


def _thinking(req: ChatRequest, target: Target) -> dict[str, Any] | None:
    effort = req.reasoning_effort
    if effort is None:
        return None
    effort = effort.lower()
    if effort not in _EFFORT_BUDGET:
        raise InvalidRequest(f"Invalid value for 'reasoning_effort': {effort[:32]!r}. Supported values are: "
                             "'none', 'minimal', 'low', 'medium', 'high'.", param="reasoning_effort")
    if target.upstream_model.startswith("gemini-3"):
        return {"thinkingLevel": _EFFORT_LEVEL[effort]}
    return {"thinkingBudget": _EFFORT_BUDGET[effort]}


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
        for t in req.tools:
            d: dict[str, Any] = {"name": t.function.name}
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
                fcc = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
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


# ---- answers ---------------------------------------------------------------------------------


def gemini_usage(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """usageMetadata → OpenAI usage (None when the upstream reported none)."""
    if not meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion_tokens = int(meta.get("candidatesTokenCount") or 0) + thoughts
    total = meta.get("totalTokenCount")
    return usage(prompt, completion_tokens, cached=int(meta.get("cachedContentTokenCount") or 0),
                 reasoning=thoughts, total=int(total) if total is not None else None)


def _logprobs(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    top = result.get("topCandidates") or []

    def entry(c: Mapping[str, Any]) -> dict[str, Any]:
        token = str(c.get("token", ""))
        return {"token": token, "logprob": float(c.get("logProbability", 0.0)), "bytes": list(token.encode())}

    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or []):
        alts = top[i].get("candidates", []) if i < len(top) else []
        content.append({**entry(chosen), "top_logprobs": [entry(a) for a in alts]})
    return {"content": content, "refusal": None}


def _parts(candidate: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(texts, function calls) of a candidate, thought parts skipped."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if "functionCall" in part:
            calls.append(part["functionCall"])
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return texts, calls


def _finish(reason: str | None, has_calls: bool, provider: str) -> str:
    if reason in _FAILED:
        raise UpstreamError(f"Provider '{provider}' ended the answer with {reason}: the model produced no "
                            "usable output.", provider=provider, code="upstream_bad_output")
    mapped = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if mapped == "stop" and has_calls else mapped


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": new_tool_call_id(), "type": "function",
            "function": {"name": call.get("name", ""), "arguments": json.dumps(call.get("args") or {})}}


def _check_error(data: Mapping[str, Any], provider: str, midstream: bool) -> None:
    err = data.get("error")
    if err is not None and "candidates" not in data:
        code = err.get("code") if isinstance(err, dict) else None
        exc = _map(code if isinstance(code, int) and code >= 400 else 500, data, {}, provider)
        if midstream and exc.status < 500 and exc.status != 429:
            exc = UpstreamError(f"Provider '{provider}' ended the stream with an error: {exc.message}",
                                provider=provider)
        raise exc


# ---- stream ----------------------------------------------------------------------------------


class GeminiStream(StreamTranslator):
    """Each SSE event is a whole GenerateContentResponse; there is no [DONE]."""

    def __init__(self, provider: str, logprobs: bool = False) -> None:
        self.provider = provider
        self.logprobs = logprobs
        self.usage: dict[str, Any] | None = None
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index → tool calls seen
        self._finished: set[int] = set()

    def _choice(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    def feed(self, event: SSEEvent) -> list[dict[str, Any]]:
        try:
            data = json.loads(event.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.", provider=self.provider)
        _check_error(data, self.provider, midstream=True)
        if data.get("usageMetadata"):
            self.usage = gemini_usage(data["usageMetadata"])
        out: list[dict[str, Any]] = []
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            out.append({"choices": [self._choice(0, {"content": None}, "content_filter")]})
            self._finished.add(0)
            self.done = True
            return out
        ended = False
        for cand in candidates:
            index = int(cand.get("index", 0))
            texts, calls = _parts(cand)
            delta: dict[str, Any] = {}
            text = "".join(texts)
            if text:
                delta["content"] = text
            if calls:
                first = self._calls.get(index, 0)
                delta["tool_calls"] = [{"index": first + k, **_tool_call(c)} for k, c in enumerate(calls)]
                self._calls[index] = first + len(calls)
            if delta:
                choice = self._choice(index, delta)
                if self.logprobs and cand.get("logprobsResult"):
                    choice["logprobs"] = _logprobs(cand["logprobsResult"])
                out.append({"choices": [choice]})
            reason = cand.get("finishReason")
            if reason:
                finish = _finish(reason, self._calls.get(index, 0) > 0, self.provider)
                out.append({"choices": [self._choice(index, {}, finish)]})
                self._finished.add(index)
                ended = True
        if ended and self._started <= self._finished:
            self.done = True
        return out


# ---- errors ----------------------------------------------------------------------------------


def _retry_delay(details: Any) -> float | None:
    for d in details if isinstance(details, list) else []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DURATION.match(str(d.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    return None


def _reasons(details: Any) -> set[str]:
    return {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")} \
        if isinstance(details, list) else set()


def _map(status: int, data: Any, headers: Mapping[str, str], provider: str) -> SkylaneError:
    err = data.get("error") if isinstance(data, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or f"upstream returned HTTP {status}")[:2000]
    rpc = str(err.get("status") or "")
    details = err.get("details")
    retry_after = _retry_delay(details)
    if retry_after is None:
        retry_after = parse_retry_after(headers)
    if rpc in ("PERMISSION_DENIED", "UNAUTHENTICATED") or any(r.startswith("API_KEY") for r in _reasons(details)):
        # never echo the provider's text: it may quote the key
        return UpstreamError(
            f"The gateway could not authenticate with provider '{provider}' (upstream {status} {rpc or 'error'}); "
            "check the provider key configured on the gateway.",
            provider=provider, code="upstream_auth_failed", retryable=False)
    if rpc == "RESOURCE_EXHAUSTED" or status == 429:
        return UpstreamRateLimited(f"Provider '{provider}' is rate limiting requests: {message}",
                                   provider=provider, retry_after=retry_after)
    if rpc == "UNAVAILABLE":
        return UpstreamUnavailable(f"Provider '{provider}' is overloaded or unavailable: {message}",
                                   provider=provider, retry_after=retry_after)
    if rpc == "DEADLINE_EXCEEDED":
        return UpstreamTimeout(f"Provider '{provider}' timed out: {message}", provider=provider)
    if rpc == "NOT_FOUND":
        return ModelNotFound(f"Provider '{provider}' answered 404: {message}", provider=provider, param="model")
    if rpc in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE") and status < 500:
        return InvalidRequest(message, provider=provider, code="upstream_bad_request")
    return classify_status(status, message, provider=provider, retry_after=retry_after)


# ---- the adapter -----------------------------------------------------------------------------


class GeminiAdapter(Adapter):
    protocol = "gemini"

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        body = await build_body(req, target, ctx)
        model = quote(target.upstream_model.removeprefix("models/"), safe="-._~")
        url = f"{ctx.base_url}/v1beta/models/{model}:"
        url += "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        headers = {"content-type": "application/json",
                   "accept": "text/event-stream" if req.stream else "application/json"}
        if ctx.api_key:
            headers["x-goog-api-key"] = ctx.api_key
        headers.update(ctx.extra_headers)
        return UpstreamRequest(url=url, headers=headers, body=body)

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        provider = target.provider.name
        _check_error(data, provider, midstream=False)
        candidates = data.get("candidates") or []
        choices: list[dict[str, Any]] = []
        if not candidates:
            if not (data.get("promptFeedback") or {}).get("blockReason"):
                raise UpstreamError(f"Provider '{provider}' answered without candidates.", provider=provider)
            choices.append({"index": 0, "message": message(None), "finish_reason": "content_filter"})
        for cand in candidates:
            texts, calls = _parts(cand)
            finish = _finish(cand.get("finishReason"), bool(calls), provider)
            content = "".join(texts) or (None if calls or finish == "content_filter" else "")
            choice: dict[str, Any] = {"index": int(cand.get("index", 0)),
                                      "message": message(content, [_tool_call(c) for c in calls]),
                                      "finish_reason": finish}
            if req.logprobs:
                choice["logprobs"] = _logprobs(cand.get("logprobsResult"))
            choices.append(choice)
        choices.sort(key=lambda c: c["index"])
        rid = data.get("responseId")
        return completion(model=target.requested, choices=choices, usage=gemini_usage(data.get("usageMetadata")),
                          id=f"chatcmpl-{rid}" if isinstance(rid, str) and _RESPONSE_ID.match(rid) else None)

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        return GeminiStream(target.provider.name, logprobs=bool(req.logprobs))

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, list) and data:  # some Google front ends wrap the error in a list
            data = data[0]
        return _map(status, data, headers, provider)


ADAPTER = GeminiAdapter()
