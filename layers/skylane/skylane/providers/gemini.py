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

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from skylane.core.answer import completion, message, usage
from skylane.core.errors import (
    InvalidRequest,
    ModelNotFound,
    SkylaneError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from skylane.providers.base import (
    NAME_GEMINI,
    Adapter,
    CallContext,
    Send,
    StreamTranslator,
    UpstreamRequest,
    classify_status,
    new_tool_call_id,
    parse_retry_after,
    tool_names,
)
from skylane.providers.gemini_request import FORMAT, _thinking, build_body
from skylane.providers.reasoning import signature_to_id
from skylane.transport.sse import SSEEvent, decode_json

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest
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

_RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")



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


def _shows_thoughts(req: ChatRequest, target: Target) -> bool:
    """Thought text is shown when the request asked for it (includeThoughts); signatures always travel."""
    try:
        return bool((_thinking(req, target) or {}).get("includeThoughts"))
    except SkylaneError:
        return False


class _Parts:
    """A candidate's parts: answer texts, thought texts (reasoning_content), function calls (as OpenAI
    tool calls whose ids carry their thoughtSignature) and the reasoning_details items."""

    def __init__(self, candidate: Mapping[str, Any], names: Mapping[str, str], first_detail: int = 0,
                 show_thoughts: bool = True) -> None:
        self.texts: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.details: list[dict[str, Any]] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            sig = part.get("thoughtSignature")
            call_id: str | None = None
            if part.get("thought"):
                if show_thoughts and isinstance(part.get("text"), str):
                    self.thoughts.append(part["text"])
            elif "functionCall" in part:
                call = _tool_call(part["functionCall"], names, sig if isinstance(sig, str) else None)
                call_id = call["id"]
                self.calls.append(call)
            elif isinstance(part.get("text"), str):
                self.texts.append(part["text"])
            if isinstance(sig, str) and sig:
                self.details.append({"type": "reasoning.encrypted", "data": sig, "format": FORMAT, "id": call_id,
                                     "index": first_detail + len(self.details)})


def _finish(reason: str | None, has_calls: bool, provider: str) -> str:
    if reason in _FAILED:
        raise UpstreamError(f"Provider '{provider}' ended the answer with {reason}: the model produced no "
                            "usable output.", provider=provider, code="upstream_bad_output")
    mapped = FINISH_REASONS.get(reason or "STOP", "stop")
    return "tool_calls" if mapped == "stop" and has_calls else mapped


def _tool_call(call: Mapping[str, Any], names: Mapping[str, str], signature: str | None) -> dict[str, Any]:
    call_id = new_tool_call_id()
    if signature:
        call_id = signature_to_id(call_id, signature)
    name = str(call.get("name", ""))
    return {"id": call_id, "type": "function",
            "function": {"name": names.get(name, name), "arguments": json.dumps(call.get("args") or {})}}


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

    def __init__(self, provider: str, logprobs: bool = False, names: Mapping[str, str] | None = None,
                 thoughts: bool = False) -> None:
        self.provider = provider
        self._thoughts = thoughts
        self.logprobs = logprobs
        self._names = names or {}
        self._details: dict[int, int] = {}  # candidate index → reasoning_details items sent
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
            data = decode_json(event.data)
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
            parts = _Parts(cand, self._names, self._details.get(index, 0), self._thoughts)
            delta: dict[str, Any] = {}
            if parts.thoughts:
                delta["reasoning_content"] = "".join(parts.thoughts)
            text = "".join(parts.texts)
            if text:
                delta["content"] = text
            if parts.calls:
                first = self._calls.get(index, 0)
                delta["tool_calls"] = [{"index": first + k, **c} for k, c in enumerate(parts.calls)]
                self._calls[index] = first + len(parts.calls)
            if parts.details:
                delta["reasoning_details"] = parts.details
                self._details[index] = self._details.get(index, 0) + len(parts.details)
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
    embeddings = True

    async def embed(self, req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
        from skylane.providers.gemini_embeddings import embed  # lazy: chat calls never load it

        return await embed(req, target, ctx, send)

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
        names = {wire: name for name, wire in tool_names(req, NAME_GEMINI).items()}
        for cand in candidates:
            parts = _Parts(cand, names, show_thoughts=_shows_thoughts(req, target))
            finish = _finish(cand.get("finishReason"), bool(parts.calls), provider)
            content = "".join(parts.texts) or (None if parts.calls or finish == "content_filter" else "")
            refusal = None
            if finish == "content_filter" and content:  # the model's own explanation of a refusal
                refusal, content = content, None
            msg = message(content, parts.calls, refusal, reasoning="".join(parts.thoughts), details=parts.details)
            choice: dict[str, Any] = {"index": int(cand.get("index", 0)), "message": msg,
                                      "finish_reason": finish}
            if req.logprobs:
                choice["logprobs"] = _logprobs(cand.get("logprobsResult"))
            choices.append(choice)
        choices.sort(key=lambda c: c["index"])
        rid = data.get("responseId")
        return completion(model=target.requested, choices=choices, usage=gemini_usage(data.get("usageMetadata")),
                          id=f"chatcmpl-{rid}" if isinstance(rid, str) and _RESPONSE_ID.match(rid) else None)

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        names = {wire: name for name, wire in tool_names(req, NAME_GEMINI).items()}
        return GeminiStream(target.provider.name, logprobs=bool(req.logprobs), names=names,
                            thoughts=_shows_thoughts(req, target))

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, list) and data:  # some Google front ends wrap the error in a list
            data = data[0]
        return _map(status, data, headers, provider)


ADAPTER = GeminiAdapter()
