"""Embeddings for OpenAI and the OpenAI-compatible family: `POST {base}/embeddings`, passed through.

The body goes as the client sent it (extension fields included), with `model` set to the upstream
id, `input` one provider-sized batch, and `encoding_format` float (the dialect renders base64).
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

from skylane.core.errors import UpstreamError
from skylane.providers.base import CallContext, Send, UpstreamRequest
from skylane.providers.embedding import Batch, check_request, embed_batches, embeddings_answer, item_tokens, max_batch

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest, Item
    from skylane.providers.openai import OpenAIAdapter

__all__ = ["MAX_BATCH", "embed"]

MAX_BATCH = 2048  # OpenAI's limit on inputs per request (for models the catalog does not list)
_GATEWAY_FIELDS = ("models", "input", "encoding_format")


def _vector(value: Any, provider: str) -> list[float]:
    if isinstance(value, str):  # a server that answered base64 anyway: little-endian float32
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list):
        raise UpstreamError(f"Provider '{provider}' answered an embedding that is not a list.", provider=provider)
    return [float(x) for x in value]


async def embed(adapter: OpenAIAdapter, req: EmbeddingRequest, target: Target, ctx: CallContext,
                send: Send) -> dict[str, Any]:
    items = check_request(req, target)
    provider = target.provider.name
    base = {k: v for k, v in req.raw.items() if k not in _GATEWAY_FIELDS}
    base["model"] = target.upstream_model
    base["encoding_format"] = "float"
    headers = adapter.headers(ctx, "application/json")
    url = adapter.endpoint(ctx, target, "embeddings")

    async def call(chunk: list[Item]) -> Batch:
        body = {**base, "input": chunk}
        data = await send(UpstreamRequest(url=url, headers=headers, body=body))
        rows = data.get("data")
        if not isinstance(rows, list):
            raise UpstreamError(f"Provider '{provider}' answered embeddings without data.", provider=provider)
        rows = sorted(rows, key=lambda r: int(r.get("index", 0)) if isinstance(r, dict) else 0)
        vectors = [_vector(r.get("embedding") if isinstance(r, dict) else None, provider) for r in rows]
        tokens = (data.get("usage") or {}).get("prompt_tokens")
        return vectors, int(tokens) if isinstance(tokens, int) else None

    vectors, usage = await embed_batches(items, max_batch(target, MAX_BATCH), call, item_tokens)
    return embeddings_answer(vectors, usage)
