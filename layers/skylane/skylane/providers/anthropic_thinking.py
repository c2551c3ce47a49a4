"""Anthropic extended thinking: `reasoning_effort` in, thinking blocks out and back.

In (by the catalog row's `reasoning.style`, never the model name):
  anthropic_budget    `thinking: {"type": "enabled", "budget_tokens": B}`; B from the level
                      (low 1024, medium 8192, high 24576, xhigh 32768, max = the row's budget max),
                      at least 1024 and below max_tokens. With the caller's own max_tokens, B is cut
                      to max_tokens - 1 (a limit of 1024 or less is a 400 naming reasoning_effort);
                      without one, max_tokens = B + SKYLANE_DEFAULT_MAX_TOKENS (capped by the model).
                      `none` sends no thinking.
  anthropic_adaptive  `thinking: {"type": "adaptive"}` + `output_config: {"effort": level}`;
                      `none` → `thinking: {"type": "disabled"}`.
A `thinking` (and `output_config`) object in the chat body is Anthropic's own field: it passes
through as given and wins over reasoning_effort.

Out: thinking blocks → `reasoning_content` (their text) and `reasoning_details` items
`{"type": "reasoning.text", "text", "signature", "format": "anthropic-claude-v1", "index"}`;
redacted_thinking → `{"type": "reasoning.encrypted", "data", "format": "anthropic-claude-v1", "index"}`.
The first tool call of a turn also carries the turn's thinking blocks in its id (reasoning.py).

Back: an assistant message's anthropic-claude-v1 items (else the blocks in its first encoded
tool-call id) become its leading thinking / redacted_thinking blocks, unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest
from skylane.providers.reasoning import blocks_from_details, budget, effort, thinking_from_calls

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["FORMAT", "assistant_thinking", "detail_of", "thinking_fields", "wants_thinking"]

FORMAT = "anthropic-claude-v1"
MIN_BUDGET = 1024


def thinking_fields(req: ChatRequest, target: Target, default_max_tokens: int) -> tuple[int, dict[str, Any]]:
    """(max_tokens, the thinking fields of the body)."""
    limit = req.output_limit
    extra = req.model_extra or {}
    native = extra.get("thinking")
    if isinstance(native, dict):
        fields: dict[str, Any] = {"thinking": native}
        if isinstance(extra.get("output_config"), dict):
            fields["output_config"] = extra["output_config"]
        max_tokens = limit or default_max_tokens
        wanted = native.get("budget_tokens")
        if limit is None and isinstance(wanted, int) and wanted >= max_tokens:
            max_tokens = wanted + default_max_tokens
        return max_tokens, fields
    resolved = effort(req, target)
    if resolved is None:
        return limit or default_max_tokens, {}
    level, spec = resolved
    if spec.get("style") == "anthropic_adaptive":
        if level == "none":
            return limit or default_max_tokens, {"thinking": {"type": "disabled"}}
        return limit or default_max_tokens, {"thinking": {"type": "adaptive"}, "output_config": {"effort": level}}
    if level == "none":
        return limit or default_max_tokens, {}
    tokens = max(MIN_BUDGET, budget(level, spec))
    if limit is not None:
        if limit <= MIN_BUDGET:
            raise InvalidRequest(f"'reasoning_effort' needs max_tokens above {MIN_BUDGET} on "
                                 f"'{target.requested}' (its thinking budget is at least {MIN_BUDGET} tokens).",
                                 param="reasoning_effort", code="invalid_value")
        return limit, {"thinking": {"type": "enabled", "budget_tokens": min(tokens, limit - 1)}}
    max_tokens = tokens + default_max_tokens
    cap = target.model.max_output_tokens
    if cap and max_tokens > cap:
        max_tokens = cap
        tokens = max(MIN_BUDGET, min(tokens, cap - 1))
    return max_tokens, {"thinking": {"type": "enabled", "budget_tokens": tokens}}


def wants_thinking(req: ChatRequest, target: Target) -> bool:
    """Whether the request turns thinking on (then thinking is shown and carried in tool-call ids)."""
    try:
        _tokens, fields = thinking_fields(req, target, 4096)
    except InvalidRequest:
        return False
    return (fields.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def _block(item: dict[str, Any]) -> dict[str, Any] | None:
    if item.get("type") == "reasoning.text":
        block: dict[str, Any] = {"type": "thinking", "thinking": str(item.get("text") or "")}
        if item.get("signature"):
            block["signature"] = item["signature"]
        return block
    if item.get("type") == "reasoning.encrypted" and item.get("data"):
        return {"type": "redacted_thinking", "data": item["data"]}
    return None


def assistant_thinking(msg: Any) -> list[dict[str, Any]]:
    """The thinking blocks to send back at the front of an assistant turn."""
    return blocks_from_details(msg, FORMAT, _block) or thinking_from_calls(msg)


def detail_of(block: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The reasoning_details item of a thinking / redacted_thinking block."""
    if block.get("type") == "thinking":
        return {"type": "reasoning.text", "text": str(block.get("thinking") or ""),
                "signature": block.get("signature"), "format": FORMAT, "index": index}
    if block.get("type") == "redacted_thinking":
        return {"type": "reasoning.encrypted", "data": block.get("data"), "format": FORMAT, "index": index}
    return None
