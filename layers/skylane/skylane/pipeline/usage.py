"""Usage the provider did not report, counted by the gateway; and the cost in the usage object.

When a stream ends (or breaks, or the client leaves) without provider usage, or an answer comes
without any, the gateway counts the prompt and the completion it relayed itself: with `tiktoken` for
OpenAI-family models, else the character estimate (core/tokens.py). Such usage carries
`estimated: true` (and the log line `usage_estimated`); it is billed, reconciles TPM and is sent in the
usage chunk like reported usage. Provider-reported usage always wins.
"""

from __future__ import annotations

import asyncio
from typing import Any

from skylane.core.catalog import Target
from skylane.core.request import ChatRequest
from skylane.core.tokens import count_prompt_tokens, tokenizer_for

__all__ = ["CompletionText", "answer_text", "complete_usage", "with_cost"]


class CompletionText:
    """What a stream sent the client, kept for counting: content, reasoning and tool-call text of
    the chunks (internal OpenAI chunk dicts)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            self.add_message(choice.get("delta") or choice.get("message") or {})

    def add_message(self, msg: dict[str, Any]) -> None:
        for name in ("content", "reasoning_content", "refusal"):
            text = msg.get(name)
            if isinstance(text, str) and text:
                self.parts.append(text)
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            for name in ("name", "arguments"):
                text = fn.get(name)
                if isinstance(text, str) and text:
                    self.parts.append(text)

    def text(self) -> str:
        return "".join(self.parts)


def _reported_enough(reported: dict[str, Any] | None, finished: bool, completion_floor: int) -> bool:
    if not reported or not int(reported.get("prompt_tokens") or 0):
        return False
    if finished:
        return True
    # a stream cut short: a provider that reports as it goes (Anthropic's message_start) may not
    # have counted all of what was relayed yet
    return int(reported.get("completion_tokens") or 0) >= completion_floor


def _count(req: ChatRequest, target: Target, reported: dict[str, Any] | None, completion: str,
           finished: bool) -> dict[str, Any]:
    counter, _ = tokenizer_for(target.provider.name, target.model.upstream_id)
    counted = counter(completion) if completion else 0
    if _reported_enough(reported, finished, counted):
        assert reported is not None
        return reported
    usage = dict(reported or {})
    prompt = int(usage.get("prompt_tokens") or 0) or count_prompt_tokens(req, counter)
    out = max(int(usage.get("completion_tokens") or 0), counted)
    usage.update(prompt_tokens=prompt, completion_tokens=out, total_tokens=prompt + out, estimated=True)
    return usage


async def complete_usage(req: ChatRequest, target: Target, reported: dict[str, Any] | None,
                         completion: str = "", finished: bool = True) -> dict[str, Any]:
    """`reported` when the provider's usage covers the call, else the gateway's own count (`estimated`).

    Counting runs in a thread: the first count of a process loads the tokenizer (~0.15 s), and a
    long prompt takes a few milliseconds to encode."""
    if _reported_enough(reported, finished, 0) and finished:
        assert reported is not None
        return reported
    return await asyncio.to_thread(_count, req, target, reported, completion, finished)


def with_cost(usage: dict[str, Any] | None, cost_micros: int) -> dict[str, Any] | None:
    """The usage with `cost` (USD, the x-skylane-cost-usd number), for the client's usage object."""
    if usage is None:
        return None
    return {**usage, "cost": round(cost_micros / 1_000_000, 6)}


def answer_text(resp: dict[str, Any]) -> str:
    """The text of a non-streamed answer's choices (for counting when it came without usage)."""
    text = CompletionText()
    for choice in resp.get("choices") or ():
        text.add_message(choice.get("message") or {})
    return text.text()
