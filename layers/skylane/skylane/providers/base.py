"""The adapter contract, and the small helpers every adapter shares.

An adapter knows one wire protocol and does four jobs, all free of I/O except media fetches
through `CallContext.fetch_media` (the guarded fetcher):

    build_request(req, target, ctx)  -> UpstreamRequest        (async: may fetch image bytes)
    parse_response(data, req, target) -> ChatCompletion dict    (model/id set by the gateway)
    stream_translator(req, target)    -> StreamTranslator       (feed(event) -> chunk dicts)
    map_error(status, body, headers, provider) -> SkylaneError

Transport (the httpx client, retries, timeouts) lives in `upstream.py`. An adapter whose
provider is not plain HTTP+JSON (Bedrock, through boto3) also sets `transport`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skylane.core.errors import (
    InvalidRequest,
    SkylaneError,
)
from skylane.core.media import Media
from skylane.transport.base import Transport, UpstreamRequest
from skylane.transport.status import classify_status, parse_retry_after

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest
    from skylane.core.request import ChatRequest
    from skylane.core.settings import Settings

__all__ = [
    "Adapter",
    "append_turn",
    "CallContext",
    "Media",
    "Send",
    "StreamTranslator",
    "Transport",
    "UpstreamRequest",
    "classify_status",
    "content_text",
    "error_message",
    "fit_value",
    "tool_names",
    "wire_name",
    "new_tool_call_id",
    "parse_data_url",
    "parse_retry_after",
]


FetchMedia = Callable[[str], Awaitable[Media]]
# one upstream call through the pipeline's transport (timeouts, timing, error mapping): the parsed JSON answer
Send = Callable[[UpstreamRequest], Awaitable[dict[str, Any]]]


async def _no_fetch(url: str) -> Media:
    raise InvalidRequest("Fetching remote media is not available here.", param="messages")


@dataclass
class CallContext:
    """What an adapter may know about the call besides the request itself."""

    api_key: str | None
    base_url: str
    default_max_tokens: int = 4096
    fetch_media: FetchMedia = _no_fetch
    extra_headers: dict[str, str] = field(default_factory=dict)
    # the gateway's settings, for transports configured from them (Bedrock: region, endpoint)
    settings: Settings | None = None
    # the client's request headers (lower-case names), for adapters that forward a few of them
    # natively (e.g. anthropic-beta); never the caller's credentials, which adapters must not read
    client_headers: Mapping[str, str] = field(default_factory=dict)


class StreamTranslator:
    """Turns upstream stream events into OpenAI chunk dicts ({"choices": [...]}, partial).

    The gateway adds id/object/created/model. `usage` holds the OpenAI usage dict once the
    upstream reported it (never invented). Raise a SkylaneError for an upstream error event.
    """

    usage: dict[str, Any] | None = None
    done: bool = False  # set when the upstream said the stream is over
    # native relays: the provider's whole final answer object when its protocol sends one (e.g. the
    # Responses API's response.completed), for the dialect's `keep` hook
    final: dict[str, Any] | None = None

    def feed(self, event: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def finish(self) -> list[dict[str, Any]]:
        """Chunks still owed when the upstream stream ended (e.g. a held finish_reason)."""
        return []


class Adapter:
    protocol: str = ""
    transport: Transport | None = None
    uses_base_url: bool = True  # False: the transport finds its endpoint itself (Bedrock: boto3)
    # dialects (skylane.dialects.*.name) this protocol serves natively: the client's body goes through
    # as sent (model rewritten) and the answer comes back as the provider sent it
    native_dialects: frozenset[str] = frozenset()

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        raise NotImplementedError

    # ---- native passthrough (only for the dialects in `native_dialects`) ----------------------

    def native_for(self, dialect: str, target: Target) -> bool:
        """Whether `target` serves `dialect` natively (by default: every target of this protocol in
        `native_dialects`; an adapter may narrow it per provider row)."""
        return dialect in self.native_dialects

    def build_count_native(self, dialect: str, req: ChatRequest, target: Target,
                           ctx: CallContext) -> UpstreamRequest | None:
        """The provider's own token-count request for `req.wire` (an HTTP POST answered with the
        dialect's count body), where it has one; None: the gateway estimates."""
        return None

    def build_native(self, dialect: str, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        """The upstream request for `req.wire` (the dialect's own body), sent as the client sent it."""
        raise NotImplementedError

    def native_usage(self, dialect: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The internal (OpenAI-shaped) usage of a native non-streamed answer, for billing."""
        raise NotImplementedError

    def native_translator(self, dialect: str, req: ChatRequest, target: Target) -> StreamTranslator:
        """A translator whose `feed(event)` returns the bytes to relay (framed for the client's wire)
        and reads usage on the way (`usage`), setting `done` at the stream's end."""
        raise NotImplementedError

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        raise NotImplementedError

    # ---- embeddings (the pipeline's "embeddings" operation) -----------------------------------

    embeddings: bool = False  # the protocol serves embeddings (see providers/embedding.py)

    async def embed(self, req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
        """The internal embeddings answer ({"data": [{"index", "embedding": [floats]}], "usage"}), made
        with as many `send` calls as the provider's batch limit needs."""
        raise InvalidRequest(f"Model '{target.requested}' does not support embeddings.", param="model",
                             code="model_not_supported")

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        raise NotImplementedError

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        raise NotImplementedError


# ---- shared helpers --------------------------------------------------------------------------


def append_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], field: str) -> None:
    """Append a turn, merging it into the previous one when the role repeats (providers that want
    alternating roles: Anthropic `content`, Bedrock `content`, Gemini `parts`). Empty turns are dropped."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][field].extend(items)
    else:
        turns.append({"role": role, field: items})


def new_tool_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def content_text(content: Any) -> str:
    """The text of a string or a list of text parts (other parts ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(getattr(p, "text", "") or "" for p in content if getattr(p, "type", None) == "text")


def parse_data_url(url: str) -> Media | None:
    """Decode `data:<mime>;base64,<data>`; None when `url` is not a data URL."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep or ";base64" not in header:
        raise InvalidRequest("Image data URLs must be base64 encoded (data:<type>;base64,...).", param="messages")
    mime = header.split(";", 1)[0] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("Invalid base64 data in a data URL.", param="messages") from None
    return Media(data=data, mime_type=mime.lower())


def error_message(body: bytes, default: str) -> tuple[str, dict[str, Any]]:
    """A provider's error message from its JSON body ({"error": {"message"}} and kin)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return default, {}
    if not isinstance(data, dict):
        return default, {}
    err = data.get("error", data)
    if isinstance(err, dict):
        msg = err.get("message")
        if isinstance(msg, str) and msg:
            return msg[:2000], err
    elif isinstance(err, str) and err:
        return err[:2000], data
    return default, data if isinstance(data, dict) else {}


# ---- names and ids that fit a provider's pattern ----------------------------------------------


def fit_value(value: str, allowed: str, limit: int) -> str:
    """`value` when it matches `[allowed]{1,limit}`; else the forbidden characters replaced and a digest
    of the original added, so distinct values stay distinct (the same value always maps the same way)."""
    if re.fullmatch(f"[{allowed}]{{1,{limit}}}", value):
        return value
    cleaned = re.sub(f"[^{allowed}]", "_", value)
    return cleaned[: limit - 13] + "_" + hashlib.sha256(value.encode()).hexdigest()[:12]


# tool-name alphabets: Anthropic ^[a-zA-Z0-9_-]{1,128}$, Bedrock [a-zA-Z0-9_-]{1,64},
# Gemini function names [a-zA-Z0-9_.:-]{1,64} (dots and colons allowed)
NAME_ANTHROPIC = ("a-zA-Z0-9_-", 128)
NAME_BEDROCK = ("a-zA-Z0-9_-", 64)
NAME_GEMINI = ("a-zA-Z0-9_.:-", 64)


def tool_names(req: ChatRequest, rule: tuple[str, int]) -> dict[str, str]:
    """The request's function names → the names sent upstream (unique, pattern-safe); invert the
    dict to map answers (and stream deltas) back to the client's names."""
    allowed, limit = rule
    return {t.function.name: fit_value(t.function.name, allowed, limit) for t in req.tools or []}


def wire_name(name: str, names: Mapping[str, str], rule: tuple[str, int]) -> str:
    """A function name from the history as sent upstream (a tool of the request, or fitted alike)."""
    return names.get(name) or fit_value(name, *rule)
