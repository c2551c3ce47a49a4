"""Secrets out of text: what may reach a response or a log line.

    redact(text)                   keys and credentials in free text → [REDACTED]
    remember_secret(value)         an exact value to redact wherever it appears (provider keys: the
                                   catalog remembers each key it hands to an adapter)
    redact_value(obj)              redact() through dicts and lists; values under header-like names
                                   (authorization, x-api-key, api_key, ...) are replaced whole
    completion_text(choices)       the text of a completion's or a chunk's choices (content and
                                   tool call arguments), collected for content logging
    content_fields(messages, text) the extra fields of the request log line when SKYLANE_LOG_CONTENT
                                   is on: the prompt messages and the completion text, redacted and
                                   size-capped (data URLs shortened to their type and size)

Every `SkylaneError` message goes through `redact()` (errors.py), so an upstream error that quotes
the provider key, an Authorization header or any `sk-...` token never reaches a client or a log.
A Skylane key keeps its public key id: `sk-skylane-<key id>-[REDACTED]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "completion_text", "content_fields", "redact", "redact_value", "remember_secret"]

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # shorter values are not remembered (they would redact ordinary words)
MAX_STRING = 8_192  # per string in a content log line
MAX_CONTENT = 65_536  # all the strings of one content log line together

_CHARS = r"[A-Za-z0-9._~+/=-]"  # what a credential is made of
_KEPT_ID = r"(?!sk-skylane-[a-z0-9]{1,64}-\[REDACTED\])"  # a Skylane key already redacted, its id kept
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # a Skylane key: the key id is public, the secret is not
    (re.compile(r"\b(sk-skylane-[a-z0-9]{1,64}-)[A-Za-z0-9]+"), r"\1" + REDACTED),
    # header-style credentials quoted in text: "Authorization: Bearer x", "x-api-key=x", "?key=x"
    (re.compile(r"(?i)\b(proxy-authorization|authorization)([\"']?\s*[:=]\s*[\"']?)"
                r"(?:(?:bearer|basic|token|digest)\s+|(?!(?:bearer|basic|token|digest)\b))" + _KEPT_ID + _CHARS
                + r"{4,}"),
     r"\1\2" + REDACTED),
    (re.compile(r"(?i)\b(x-api-key|x-goog-api-key|api[-_]?key|access[-_]?token|auth[-_]?token|secret[-_]?key|"
                r"client[-_]?secret|password|key)([\"']?\s*[:=]\s*[\"']?)" + _KEPT_ID + _CHARS + r"{8,}"),
     r"\1\2" + REDACTED),
    (re.compile(r"(?i)\bbearer\s+" + _KEPT_ID + _CHARS + r"{8,}"), "Bearer " + REDACTED),
    # well-known key shapes: OpenAI-style sk-... (OpenAI, Anthropic sk-ant-, DeepSeek, ...), Google
    # AIza..., AWS access key ids, Groq gsk_..., xAI xai-..., GitHub, Hugging Face, Slack
    (re.compile(r"\b" + _KEPT_ID + r"sk-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\b(?:gsk|ghp|gho|ghs|hf)_[A-Za-z0-9]{16,}"), REDACTED),
    (re.compile(r"\bxai-[A-Za-z0-9]{16,}"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), REDACTED),
]
_SENSITIVE_NAMES = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "api_key", "apikey",
    "access_token", "auth_token", "secret", "client_secret", "password", "cookie", "set-cookie",
})

_secrets: set[str] = set()
_secrets_pattern: re.Pattern[str] | None = None


def remember_secret(value: str | None) -> None:
    """Redact `value` wherever it appears from now on (idempotent and cheap: call it per request)."""
    global _secrets_pattern
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    _secrets.add(value)
    # longest first, so a key that contains another is redacted whole
    alternatives = sorted(_secrets, key=len, reverse=True)
    _secrets_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """`text` with every credential it quotes replaced by [REDACTED]."""
    if not text:
        return text
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for rx, replacement in _PATTERNS:
        text = rx.sub(replacement, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """redact() applied to every string in a JSON-like value; sensitive keys lose their whole value."""
    if isinstance(value, str):
        return redact(value)
    if _depth > 64:
        return "[...]"
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and k.lower() in _SENSITIVE_NAMES and v not in (None, "")
                else redact_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, _depth + 1) for v in value]
    return value


# ---- the content log fields ----------------------------------------------------------------------


class _Budget:
    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str) -> str:
        if text.startswith("data:") and ";base64," in text[:200]:
            head, _, payload = text.partition(",")
            text = f"{head},<{len(payload) * 3 // 4} bytes>"
        limit = min(MAX_STRING, max(0, self.left))
        if len(text) > limit:
            text = text[:limit] + f"...[{len(text) - limit} more characters]"
        self.left -= min(len(text), limit)
        return text


def _shorten(value: Any, budget: _Budget, depth: int = 0) -> Any:
    if isinstance(value, str):
        return budget.take(value)
    if depth > 64:
        return "[...]"
    if isinstance(value, Mapping):
        return {k: _shorten(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten(v, budget, depth + 1) for v in value]
    return value


def content_fields(messages: Iterable[Any] | None, completion: str | None) -> dict[str, Any]:
    """`messages` and `completion` for the request log line: redacted first, then capped."""
    budget = _Budget(MAX_CONTENT)
    out: dict[str, Any] = {"messages": _shorten(redact_value(list(messages or [])), budget)}
    if completion is not None:
        out["completion"] = budget.take(redact(completion))
    return out


def completion_text(choices: Iterable[Any]) -> str:
    """Content and tool-call arguments of completion choices (`message`) or chunk choices (`delta`)."""
    parts: list[str] = []
    for choice in choices:
        msg = choice.get("message") or choice.get("delta") or {}
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            if fn.get("name"):
                parts.append(f"[tool call {fn['name']}] ")
            if isinstance(fn.get("arguments"), str):
                parts.append(fn["arguments"])
    return "".join(parts)
