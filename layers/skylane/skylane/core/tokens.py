"""Cheap token estimates for reservations (before the provider reports real usage)."""

from __future__ import annotations

from skylane.core.request import ChatRequest

__all__ = ["estimate_prompt_tokens", "estimate_text_tokens"]

_IMAGE_TOKENS = 800  # a typical image in a vision prompt


def estimate_text_tokens(chars: int) -> int:
    return chars // 4 + 1


def estimate_prompt_tokens(req: ChatRequest) -> int:
    chars = 0
    images = 0
    for msg in req.messages:
        content = getattr(msg, "content", None)
        if isinstance(content, str):
            chars += len(content)
        elif content:
            for part in content:
                text = getattr(part, "text", None)
                if text:
                    chars += len(text)
                elif getattr(part, "type", "") in ("image_url", "video_url", "file", "input_audio"):
                    images += 1
        for call in getattr(msg, "tool_calls", None) or ():
            chars += len(call.function.arguments) + len(call.function.name)
        chars += 16  # role and framing
    for tool in req.tools or ():
        chars += len(tool.function.name) + len(tool.function.description or "") + 200
    return estimate_text_tokens(chars) + images * _IMAGE_TOKENS
