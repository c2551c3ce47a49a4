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
| temperature, top_p, stop               | `inferenceConfig.temperature / topP / stopSequences` (Claude:   |
|                                        | temperature wins over top_p; neither with thinking on)         |
| reasoning_effort, top_k, cache marks   | `additionalModelRequestFields`, `cachePoint` blocks: see        |
|                                        | bedrock_reasoning.py                                            |
| tools                                  | `toolConfig.tools[].toolSpec{name, description, inputSchema}`   |
| tool_choice auto / required / named    | `toolChoice {auto} / {any} / {tool: {name}}`                    |
| tool_choice none                       | no `toolConfig`; tool calls/results in the history become text  |
|                                        | (Bedrock refuses toolUse/toolResult blocks without toolConfig)  |
| response_format json_object/json_schema| a tool forced with `toolChoice.tool` whose input is the answer  |

Images come as bytes: data URLs are decoded, https URLs go through the guarded fetcher
(`ctx.fetch_media`). Tool names and tool-call ids are made to fit Bedrock's patterns, the same
way in requests and answers.

Refused with 400 `unsupported_parameter`: n > 1, logprobs / top_logprobs, logit_bias,
non-zero presence_penalty / frequency_penalty, reasoning_effort on a model whose catalog row does not
reason, audio input or output,
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
cached_tokens = cacheReadInputTokens, cache_write_tokens = cacheWriteInputTokens (the 1-hour part of
cacheDetails → cache_write_1h_tokens), completion_tokens = outputTokens. reasoningContent blocks →
reasoning_content / reasoning_details (bedrock_reasoning.py).

Errors (botocore ClientError codes, HTTP or mid-stream event): Throttling → 429,
ServiceUnavailable / ModelNotReady → 503, Validation → 400, AccessDenied (and other credential
errors) → 502 without AWS's text, ResourceNotFound → 404, ModelTimeout → 504,
ModelStreamError / ModelError / InternalServer → 502.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skylane.core.answer import completion, message
from skylane.core.answer import usage as make_usage
from skylane.core.errors import (
    SkylaneError,
    UpstreamError,
)
from skylane.providers.anthropic_native import (
    BedrockRelay,
    bedrock_native_for,
    bedrock_native_request,
    native_usage_of,
)
from skylane.providers.base import (
    Adapter,
    CallContext,
    Send,
    StreamTranslator,
    UpstreamRequest,
    error_message,
    parse_retry_after,
)
from skylane.providers.bedrock_reasoning import FORMAT, detail_of, id_with_reasoning, shows_reasoning
from skylane.providers.bedrock_request import build_converse, json_tool_name, tool_names
from skylane.transport.bedrock import BedrockTransport, get_client, map_code, map_exception

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest
    from skylane.core.request import ChatRequest

__all__ = ["ADAPTER", "BedrockAdapter", "BedrockStream", "BedrockTransport", "build_converse", "get_client",
           "map_exception"]

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "tool_use": "tool_calls",
           "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
_MALFORMED = ("malformed_model_output", "malformed_tool_use")



# ---- answers --------------------------------------------------------------------------------------


def _usage(raw: Any) -> dict[str, Any] | None:
    """cacheReadInputTokens → cached_tokens; cacheWriteInputTokens → cache_write_tokens, the part that
    cacheDetails puts in the 1-hour tier → cache_write_1h_tokens."""
    if not isinstance(raw, Mapping):
        return None
    read = raw.get("cacheReadInputTokens")
    written = int(raw.get("cacheWriteInputTokens") or 0)
    hour = sum(int(d.get("inputTokens") or 0) for d in raw.get("cacheDetails") or ()
               if isinstance(d, Mapping) and d.get("ttl") == "1h")
    hour = min(hour, written)
    prompt = int(raw.get("inputTokens") or 0) + int(read or 0) + written
    return make_usage(prompt, int(raw.get("outputTokens") or 0), cached=int(read) if read is not None else None,
                      cache_write=written - hour, cache_write_1h=hour)


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
    names = {wire: orig for orig, wire in tool_names(req).items()}
    json_name = json_tool_name(req)
    msg = (data.get("output") or {}).get("message")
    if not isinstance(msg, Mapping):
        raise UpstreamError(f"Provider '{provider}' answered without a message.", provider=provider)
    shown = shows_reasoning(req, target)
    texts: list[str] = []
    answers: list[str] = []
    calls: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "reasoningContent" in block and shown:
            item = detail_of(block["reasoningContent"], len(details))
            if item is not None:
                details.append(item)
        elif "toolUse" in block:
            use = block["toolUse"]
            if json_name is not None and use.get("name") == json_name:
                answers.append(json.dumps(use.get("input") or {}))
            else:
                call = _tool_call(use, names)
                if not calls:
                    call["id"] = id_with_reasoning(call["id"], details)
                calls.append(call)
    text = "".join(answers) if answers else "".join(texts)
    finish = _finish(data.get("stopReason"), bool(calls), provider)
    content = text if (text or not calls) else None
    reasoning = "".join(d.get("text") or "" for d in details)
    choice = {"index": 0, "message": message(content, calls or None, reasoning=reasoning, details=details),
              "finish_reason": finish}
    return completion(model=target.requested, choices=[choice], usage=_usage(data.get("usage")))


class BedrockStream(StreamTranslator):
    """ConverseStream events (boto3's parsed dicts) → OpenAI chunks.

    Text blocks have no contentBlockStart; a toolUse block starts with one. Tool calls get dense
    indexes from 0 whatever their contentBlockIndex. The finish reason (messageStop) is held until
    `metadata` brings the usage, which ends the stream.
    """

    def __init__(self, provider: str, names: dict[str, str], json_name: str | None,
                 show_reasoning: bool = False) -> None:
        self.provider = provider
        self._show = show_reasoning
        self._reasoning: dict[int, dict[str, Any]] = {}  # contentBlockIndex → its reasoning_details item
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
            if tool == 0:
                call["id"] = id_with_reasoning(call["id"], list(self._reasoning.values()))
            call["function"]["arguments"] = ""
            return [self._chunk({"tool_calls": [{"index": tool, **call}]})]
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            block = int(body.get("contentBlockIndex", 0))
            delta = body.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})] if delta["text"] else []
            if "reasoningContent" in delta:
                return self._reasoning_delta(block, delta["reasoningContent"]) if self._show else []
            fragment = (delta.get("toolUse") or {}).get("input")
            if fragment:
                if block in self._json_blocks:
                    return [self._chunk({"content": fragment})]
                if block in self._tools:
                    self._args_seen.add(block)
                    return [self._args(self._tools[block], fragment)]
            return []  # citations and other block kinds are not part of the OpenAI answer
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

    def _reasoning_delta(self, block: int, delta: Mapping[str, Any]) -> list[dict[str, Any]]:
        """reasoningContent deltas: text → reasoning_content, signature / redactedContent → a
        reasoning_details item (the whole block is kept for the first tool-call id)."""
        item = self._reasoning.get(block)
        if "redactedContent" in delta:
            done = detail_of({"redactedContent": delta["redactedContent"]}, len(self._reasoning))
            if done is None:
                return []
            self._reasoning[block] = done
            return [self._chunk({"reasoning_details": [done]})]
        if item is None:
            item = self._reasoning[block] = {"type": "reasoning.text", "text": "", "signature": None,
                                             "format": FORMAT, "index": len(self._reasoning)}
        if delta.get("text"):
            item["text"] += str(delta["text"])
            return [self._chunk({"reasoning_content": str(delta["text"])})]
        if delta.get("signature"):
            item["signature"] = str(item.get("signature") or "") + str(delta["signature"])
            return [self._chunk({"reasoning_details": [{**item, "text": "", "signature": str(delta["signature"])}]})]
        return []

    def finish(self) -> list[dict[str, Any]]:
        if self._stop is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk({}, _finish(self._stop, bool(self._tools), self.provider))]



class BedrockAdapter(Adapter):
    protocol = "bedrock"
    embeddings = True

    async def embed(self, req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
        from skylane.providers.bedrock_embeddings import embed  # lazy: chat calls never load it

        return await embed(req, target, ctx, send)
    uses_base_url = False  # boto3 finds the endpoint (AWS_ENDPOINT_URL_BEDROCK_RUNTIME or the region)

    native_dialects = frozenset({"anthropic"})  # Claude models only: see native_for

    def __init__(self) -> None:
        self.transport = BedrockTransport()

    # ---- native Messages bodies for Claude (InvokeModel; providers/anthropic_native.py) ----------
    def native_for(self, dialect: str, target: Target) -> bool:
        return dialect in self.native_dialects and bedrock_native_for(target)

    def build_native(self, dialect: str, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        return bedrock_native_request(req, target, ctx)

    def native_usage(self, dialect: str, data: dict[str, Any]) -> dict[str, Any] | None:
        return native_usage_of(data["usage"]) if isinstance(data.get("usage"), dict) else None

    def native_translator(self, dialect: str, req: ChatRequest, target: Target) -> StreamTranslator:
        provider = target.provider.name
        return BedrockRelay(provider, lambda obj: UpstreamError(
            f"Provider '{provider}' ended the stream with an error: {str(obj.get('error'))[:500]}", provider=provider))

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        kwargs = await build_converse(req, target, ctx)
        # no HTTP here: `url` only names the provider and model (for errors and logs)
        return UpstreamRequest(url="", headers={}, body={}, extra=kwargs, provider=target.provider.name)

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        return parse_converse(data, req, target)

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        names = {wire: orig for orig, wire in tool_names(req).items()}
        return BedrockStream(target.provider.name, names, json_tool_name(req), shows_reasoning(req, target))

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        message, data = error_message(body, f"upstream returned HTTP {status}")
        code = (headers.get("x-amzn-errortype") or str(data.get("__type") or "")).split(":", 1)[0].split("#")[-1]
        return map_code(code, message, status, provider, parse_retry_after(headers))


ADAPTER = BedrockAdapter()
