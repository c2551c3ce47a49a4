"""Bedrock Converse: reasoning, prompt caching and the per-family sampling rules (see bedrock.py).

In, by the catalog row's `reasoning.style` (never the model name), through
`additionalModelRequestFields`:
  bedrock_anthropic  `thinking: {"type": "enabled", "budget_tokens": B}` (the budget rules of
                     anthropic_thinking.py: B from the level, at least 1024, below maxTokens);
                     a `thinking` object in the chat body passes through as given
  bedrock_nova       `reasoningConfig: {"type": "enabled", "maxReasoningEffort": level}`
                     (`none`: `{"type": "disabled"}`)
  deepseek           nothing to send (the model always reasons)
Sampling: Claude takes one of temperature / top_p (temperature wins; recent Claude models refuse
both) and none of them, nor top_k, while thinking; `top_k` goes to
`additionalModelRequestFields` as `top_k` (Claude) or `inferenceConfig.topK` (Nova) and is dropped
for the other families (Converse has no field for it).

Out: `reasoningContent` blocks → `reasoning_content` (their text) and `reasoning_details` items
`{"type": "reasoning.text", "text", "signature", "format": "bedrock-converse-v1", "index"}`
(`redactedContent` → `{"type": "reasoning.encrypted", "data": <base64>, ...}`); the first tool call
of the turn also carries them in its id (reasoning.py's `__skth_` encoding).
Back: an assistant message's bedrock-converse-v1 items (else the blocks in a tool-call id) become
its leading `reasoningContent` blocks, unchanged, when thinking is on.

Caching: a marked part, message or tool (`cache_control` / `prompt_cache_breakpoint`) gets a
`{"cachePoint": {"type": "default"}}` block after it (`ttl` "5m" / "1h" when asked), on models whose
catalog row prices cached input (the others refuse cachePoint; the mark is dropped there).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from skylane.core.errors import SkylaneError
from skylane.providers.anthropic_native import bedrock_native_for
from skylane.providers.anthropic_thinking import thinking_fields
from skylane.providers.reasoning import (
    blocks_from_details,
    cache_mark,
    effort,
    thinking_from_calls,
    thinking_to_id,
)

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["FORMAT", "Reasoning", "cache_point", "detail_of", "id_with_reasoning", "reasoning_blocks",
           "sampling", "shows_reasoning"]

FORMAT = "bedrock-converse-v1"


class Reasoning:
    """The reasoning decision of one request: the additional fields, maxTokens, and whether thinking
    (with its signed blocks) is on."""

    def __init__(self, req: ChatRequest, target: Target, default_max_tokens: int) -> None:
        self.claude = bedrock_native_for(target)
        self.fields: dict[str, Any] = {}
        self.max_tokens = req.output_limit or default_max_tokens
        self.on = False
        style = (target.model.reasoning or {}).get("style")
        native = (req.model_extra or {}).get("thinking")
        if self.claude and (style == "bedrock_anthropic" or isinstance(native, dict)):
            self.max_tokens, fields = thinking_fields(req, target, default_max_tokens)
            if isinstance(fields.get("thinking"), dict):
                self.fields["thinking"] = fields["thinking"]
                self.on = fields["thinking"].get("type") in ("enabled", "adaptive")
            return
        resolved = effort(req, target)  # a model that does not reason: a 400 naming reasoning_effort
        if resolved is None:
            return
        level, spec = resolved
        if spec.get("style") == "bedrock_nova":
            self.fields["reasoningConfig"] = {"type": "disabled"} if level == "none" else {
                "type": "enabled", "maxReasoningEffort": level}
            self.on = level != "none"
        elif level != "none":
            self.on = True  # always-reasoning families (deepseek): nothing to send, the text is shown


def sampling(req: ChatRequest, target: Target, why: Reasoning, inference: dict[str, Any]) -> None:
    """temperature / topP into `inference`, top_k into the additional fields, by the family's rules."""
    top_k = (req.model_extra or {}).get("top_k")
    has_k = isinstance(top_k, int) and not isinstance(top_k, bool)
    if why.claude:
        if why.on and "thinking" in why.fields:
            return  # thinking refuses temperature, top_k and a narrowed top_p
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        elif req.top_p is not None:
            inference["topP"] = req.top_p
        if has_k:
            why.fields["top_k"] = top_k
        return
    if req.temperature is not None:
        inference["temperature"] = req.temperature
    if req.top_p is not None:
        inference["topP"] = req.top_p
    if has_k and target.model.developer == "Amazon":
        why.fields.setdefault("inferenceConfig", {})["topK"] = top_k


# ---- cache points -------------------------------------------------------------------------------


def cache_point(obj: Any, target: Target) -> dict[str, Any] | None:
    """The cachePoint block a marked part / message / tool asks for, where the model caches."""
    mark = cache_mark(obj)
    if mark is None or (target.model.in_catalog and target.model.cached_input_price is None):
        return None
    point: dict[str, Any] = {"type": "default"}
    if mark.get("ttl"):
        point["ttl"] = mark["ttl"]
    return {"cachePoint": point}


# ---- reasoning blocks out and back --------------------------------------------------------------


def detail_of(block: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The reasoning_details item of a Converse reasoningContent block."""
    text = block.get("reasoningText")
    if isinstance(text, dict):
        return {"type": "reasoning.text", "text": str(text.get("text") or ""), "signature": text.get("signature"),
                "format": FORMAT, "index": index}
    redacted = block.get("redactedContent")
    if isinstance(redacted, bytes | bytearray) and redacted:
        return {"type": "reasoning.encrypted", "data": base64.b64encode(redacted).decode(), "format": FORMAT,
                "index": index}
    return None


def id_with_reasoning(call_id: str, details: list[dict[str, Any]]) -> str:
    """A tool-call id carrying the turn's reasoning (Anthropic-shaped blocks, as reasoning.py encodes)."""
    blocks: list[dict[str, Any]] = []
    for d in details:
        if d["type"] == "reasoning.text":
            blocks.append({"type": "thinking", "thinking": d["text"], "signature": d.get("signature")})
        else:
            blocks.append({"type": "redacted_thinking", "data": d["data"]})
    return thinking_to_id(call_id, blocks)


def _block(item: dict[str, Any]) -> dict[str, Any] | None:
    if item.get("type") == "reasoning.text":
        text: dict[str, Any] = {"text": str(item.get("text") or "")}
        if item.get("signature"):
            text["signature"] = str(item["signature"])
        return {"reasoningContent": {"reasoningText": text}}
    if item.get("type") == "reasoning.encrypted" and item.get("data"):
        try:
            return {"reasoningContent": {"redactedContent": base64.b64decode(str(item["data"]), validate=True)}}
        except (binascii.Error, ValueError):
            return None
    return None


def reasoning_blocks(msg: Any) -> list[dict[str, Any]]:
    """The reasoningContent blocks to send back at the front of an assistant turn."""
    blocks = blocks_from_details(msg, FORMAT, _block)
    if blocks:
        return blocks
    out = []
    for b in thinking_from_calls(msg):  # the id carries Anthropic-shaped blocks: back to Converse's
        item = ({"type": "reasoning.text", "text": b.get("thinking"), "signature": b.get("signature")}
                if b["type"] == "thinking" else {"type": "reasoning.encrypted", "data": b.get("data")})
        if (block := _block(item)) is not None:
            out.append(block)
    return out


def shows_reasoning(req: ChatRequest, target: Target) -> bool:
    """Whether reasoning text goes to the client (the request turned reasoning on)."""
    try:
        return Reasoning(req, target, 4096).on
    except SkylaneError:
        return False
