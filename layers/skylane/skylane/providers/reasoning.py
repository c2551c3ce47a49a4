"""Reasoning and prompt-caching pieces every adapter shares (see docs/providers.md, "Reasoning" and
"Prompt caching").

- `effort(req, target)`: the request's `reasoning_effort` checked against the catalog row's
  `reasoning` object (never the model name) and clamped to the nearest level the model accepts;
  `budget(level, spec)` turns a level into a token budget for the budget styles.
- Tool-call id encoding, for clients that keep only the tool-call id of an assistant message
  (not its `reasoning_details`): `<original id>__sk<tag>_<base64url payload>`, where tag `th` carries
  Anthropic thinking blocks (zlib-compressed JSON list of the blocks) and `ts` a Gemini
  thoughtSignature (its bytes). `split_id` undoes it; adapters always send the original id upstream.
- `cache_mark(obj)`: the Anthropic-style `{"type": "ephemeral", "ttl"?}` breakpoint of a content
  part, message or tool (`cache_control`, or OpenAI's `prompt_cache_breakpoint`).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UnsupportedParameter

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["LEVELS", "blocks_from_details", "budget", "cache_mark", "details_of", "effort", "join_id", "split_id",
           "thinking_from_calls", "thinking_from_id"]

LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_DEFAULT_LEVELS = ("low", "medium", "high")
_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_SEP = "__sk"
ANTHROPIC_ID_LIMIT = 4096  # longer thinking rides only in reasoning_details
GEMINI_ID_LIMIT = 1024  # "short enough" for clients that store ids; longer signatures: reasoning_details only


def effort(req: ChatRequest, target: Target) -> tuple[str, Mapping[str, Any]] | None:
    """(level, the model's reasoning spec) for the request's reasoning_effort; None when it asks for
    nothing (or `none` on a model that does not reason). `none` is returned as is: each adapter turns
    reasoning off where the model can, else uses its lowest level."""
    raw = req.reasoning_effort
    if raw is None:
        return None
    level = raw.lower()
    if level not in LEVELS:
        raise InvalidRequest(f"Invalid value for 'reasoning_effort': {raw[:32]!r}. Supported values are: "
                             + ", ".join(f"'{x}'" for x in LEVELS) + ".", param="reasoning_effort",
                             code="invalid_value")
    spec = target.model.reasoning
    if not spec:
        if level == "none":
            return None
        raise UnsupportedParameter(f"Model '{target.requested}' does not reason: 'reasoning_effort' is not "
                                   "supported.", param="reasoning_effort")
    if level == "none":
        return level, spec
    return nearest(level, [x for x in spec.get("levels") or _DEFAULT_LEVELS if x != "none"]), spec


def nearest(level: str, levels: list[str]) -> str:
    """The accepted level closest to `level` in LEVELS' order (a tie goes to the higher one)."""
    if level in levels or not levels:
        return level
    want = LEVELS.index(level)
    return min(levels, key=lambda x: (abs(LEVELS.index(x) - want), -LEVELS.index(x)))


def lowest(spec: Mapping[str, Any]) -> str:
    levels = [x for x in spec.get("levels") or _DEFAULT_LEVELS if x != "none"]
    return min(levels, key=LEVELS.index)


def budget(level: str, spec: Mapping[str, Any]) -> int:
    """The token budget of a level, inside the row's `budget` {"min", "max"}."""
    bounds = spec.get("budget") or {}
    low = int(bounds.get("min", 0))
    high = int(bounds.get("max", 32768))
    value = high if level == "max" else _BUDGETS.get(level, 8192)
    return max(low, min(high, value))


# ---- tool-call id encoding --------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def join_id(base: str, tag: str, payload: bytes, limit: int) -> str:
    """`base` with `payload` encoded after it, when the whole id stays within `limit` characters."""
    out = f"{base}{_SEP}{tag}_{_b64url(payload)}"
    return out if len(out) <= limit and _SEP not in base else base


def split_id(call_id: str) -> tuple[str, str | None, bytes | None]:
    """(original id, tag, payload) of an id made by join_id; (id, None, None) for any other id."""
    i = call_id.find(_SEP)
    if i <= 0:
        return call_id, None, None
    rest = call_id[i + len(_SEP):]
    tag, sep, payload = rest.partition("_")
    data = _unb64url(payload) if sep else None
    if data is None:
        return call_id, None, None
    return call_id[:i], tag, data


def thinking_to_id(base: str, blocks: list[dict[str, Any]]) -> str:
    """An Anthropic tool_use id carrying the thinking blocks of its turn."""
    if not blocks:
        return base
    raw = json.dumps(blocks, separators=(",", ":")).encode()
    return join_id(base, "th", zlib.compress(raw, 9), ANTHROPIC_ID_LIMIT)


def thinking_from_id(call_id: str) -> list[dict[str, Any]]:
    _base, tag, data = split_id(call_id)
    if tag != "th" or data is None:
        return []
    try:
        blocks = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError):
        return []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking")] \
        if isinstance(blocks, list) else []


def thinking_from_calls(msg: Any) -> list[dict[str, Any]]:
    """The thinking blocks encoded in the first of a history message's tool-call ids that has them
    (for clients that keep only the id); [] when none does."""
    for call in _field(msg, "tool_calls") or ():
        blocks = thinking_from_id(call.id)
        if blocks:
            return blocks
    return []


def signature_to_id(base: str, signature: str) -> str:
    """A tool-call id carrying a Gemini thoughtSignature (base64 text)."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return base
    return join_id(base, "ts", raw, GEMINI_ID_LIMIT)


def signature_from_id(call_id: str) -> str | None:
    _base, tag, data = split_id(call_id)
    return base64.b64encode(data).decode() if tag == "ts" and data is not None else None


def original_id(call_id: str) -> str:
    return split_id(call_id)[0]


# ---- request fields ---------------------------------------------------------------------------


def details_of(msg: Any, fmt: str) -> list[dict[str, Any]]:
    """The assistant message's reasoning_details items of one format, in order."""
    items = _field(msg, "reasoning_details")
    if not isinstance(items, list):
        return []
    return [d for d in items if isinstance(d, dict) and d.get("format") == fmt]


def blocks_from_details(msg: Any, fmt: str, to_block: Callable[[dict[str, Any]], dict[str, Any] | None]) -> list[
        dict[str, Any]]:
    """The provider blocks of a history message's `reasoning_details` in `fmt`, in their order."""
    items = details_of(msg, fmt)
    return [b for it in sorted(items, key=lambda d: int(d.get("index") or 0)) if (b := to_block(it))]


def _field(obj: Any, name: str) -> Any:
    """A model's field or extra by name, else None (what getattr(obj, name, None) gives, without the
    cost of pydantic raising and catching AttributeError for a name the model does not have)."""
    values = getattr(obj, "__dict__", None)
    if values is not None and name in values:
        return values[name]
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra:
        return extra.get(name)
    return None if values is not None or extra is not None else getattr(obj, name, None)


def cache_mark(obj: Any) -> dict[str, Any] | None:
    """The cache breakpoint set on a part, message or tool: {"type": "ephemeral"} (+ "ttl": "5m" | "1h").
    OpenAI's prompt_cache_breakpoint ttl is a minimum lifetime: any ttl asks for Anthropic's 1h tier."""
    cc = _field(obj, "cache_control")
    if isinstance(cc, Mapping) and cc.get("type") == "ephemeral":
        mark: dict[str, Any] = {"type": "ephemeral"}
        if cc.get("ttl") in ("5m", "1h"):
            mark["ttl"] = cc["ttl"]
        return mark
    bp = _field(obj, "prompt_cache_breakpoint")
    if isinstance(bp, Mapping):
        return {"type": "ephemeral", "ttl": "1h"} if bp.get("ttl") else {"type": "ephemeral"}
    return None


def blank(text: str | None) -> bool:
    """Text providers refuse as a block (empty or whitespace only)."""
    return not text or not text.strip()
