"""Embeddings on Bedrock through InvokeModel: Amazon Titan Text Embeddings and Cohere Embed.

- Titan (`amazon.titan-embed-text-*`): one text per call, {"inputText", "dimensions", "normalize"}
  -> {"embedding", "inputTextTokenCount"}; `normalize` defaults to true (unit vectors, as OpenAI's).
- Cohere (`cohere.embed-*`): up to 96 texts per call, {"texts", "input_type", "truncate"} ->
  {"embeddings": [[...]]} (or {"embeddings": {"float": [[...]]}}); input tokens from the
  `x-amzn-bedrock-input-token-count` response header. `input_type` defaults to search_document.

Calls go concurrently (bounded) through the pipeline's `send` and the Bedrock transport's InvokeModel.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UpstreamError
from skylane.providers.base import CallContext, Send, UpstreamRequest
from skylane.providers.embedding import (
    Batch,
    check_request,
    embed_batches,
    embeddings_answer,
    item_tokens,
    max_batch,
    text_items,
)
from skylane.transport.bedrock import INVOKE_MODEL

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest

__all__ = ["COHERE_MAX_BATCH", "embed"]

COHERE_MAX_BATCH = 96  # Cohere Embed's limit on texts per call
_INPUT_COUNT_HEADER = "x-amzn-bedrock-input-token-count"


_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.")


def _family(upstream: str) -> str | None:
    name = upstream.split("/")[-1]  # an ARN's last part
    for prefix in _REGION_PREFIXES:  # a cross-region inference profile
        name = name.removeprefix(prefix)
    if name.startswith("amazon.titan-embed"):
        return "titan"
    if name.startswith("cohere.embed"):
        return "cohere"
    return None


def _floats(values: Any, provider: str) -> list[float]:
    if not isinstance(values, list):
        raise UpstreamError(f"Provider '{provider}' answered an embedding that is not a list.", provider=provider)
    return [float(v) for v in values]


def _header_tokens(headers: Any) -> int | None:
    raw = (headers or {}).get(_INPUT_COUNT_HEADER)
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _request(target: Target, body: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest(url="", headers={}, body={}, provider=target.provider.name,
                           extra={"operation": INVOKE_MODEL, "modelId": target.upstream_model,
                                  "body": json.dumps(body)})


async def embed(req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
    family = _family(target.upstream_model)
    if family is None:
        raise InvalidRequest(f"Model '{target.requested}' does not support embeddings on Bedrock (Skylane embeds "
                             "with Amazon Titan Text Embeddings and Cohere Embed).", param="model",
                             code="model_not_supported")
    texts = text_items(check_request(req, target), target)
    provider = target.provider.name
    if family == "titan":
        titan: dict[str, Any] = {"normalize": True if req.extension("normalize") is None
                                 else bool(req.extension("normalize"))}
        if req.dimensions is not None:
            titan["dimensions"] = req.dimensions

        async def call_titan(chunk: list[str]) -> Batch:
            data = await send(_request(target, {"inputText": chunk[0], **titan}))
            body = data.get("body") or {}
            tokens = body.get("inputTextTokenCount")
            return [_floats(body.get("embedding"), provider)], int(tokens) if isinstance(tokens, int) else None

        vectors, usage = await embed_batches(texts, 1, call_titan, item_tokens)
        return embeddings_answer(vectors, usage)

    if req.dimensions is not None and not target.model.embedding:
        raise InvalidRequest(f"Model '{target.requested}' does not support 'dimensions'.", param="dimensions",
                             code="invalid_value")
    cohere: dict[str, Any] = {"input_type": req.extension("input_type") or "search_document"}
    if req.extension("truncate") is not None:
        cohere["truncate"] = req.extension("truncate")

    async def call_cohere(chunk: list[str]) -> Batch:
        data = await send(_request(target, {"texts": chunk, **cohere}))
        body = data.get("body") or {}
        rows = body.get("embeddings")
        if isinstance(rows, dict):  # asked with embedding_types: {"float": [[...]]}
            rows = rows.get("float")
        if not isinstance(rows, list):
            raise UpstreamError(f"Provider '{provider}' answered without embeddings.", provider=provider)
        return [_floats(r, provider) for r in rows], _header_tokens(data.get("headers"))

    size = min(max_batch(target, COHERE_MAX_BATCH), COHERE_MAX_BATCH)
    vectors, usage = await embed_batches(texts, size, call_cohere, item_tokens)
    return embeddings_answer(vectors, usage)
