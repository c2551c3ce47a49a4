"""Embeddings for Gemini: `POST /v1beta/models/{model}:batchEmbedContents`.

Each input is one EmbedContentRequest {model, content {parts [{text}]}, outputDimensionality,
taskType} (task type from the `task_type` extension field, e.g. RETRIEVAL_QUERY); the answer is
`embeddings [{values}]` in request order. Gemini takes at most 100 requests per batch and reports
no token counts, so usage is the gateway's estimate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest

__all__ = ["MAX_BATCH", "embed"]

MAX_BATCH = 100  # Gemini's limit on requests per batchEmbedContents call


async def embed(req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
    texts = text_items(check_request(req, target), target)
    provider = target.provider.name
    upstream = target.upstream_model.removeprefix("models/")
    url = f"{ctx.base_url}/v1beta/models/{quote(upstream, safe='-._~')}:batchEmbedContents"
    headers = {"content-type": "application/json", "accept": "application/json"}
    if ctx.api_key:
        headers["x-goog-api-key"] = ctx.api_key
    headers.update(ctx.extra_headers)
    extra: dict[str, Any] = {}
    if req.dimensions is not None:
        extra["outputDimensionality"] = req.dimensions
    task = req.extension("task_type")
    if task is not None:
        if not isinstance(task, str) or not task:
            raise InvalidRequest("'task_type' must be a Gemini task type such as RETRIEVAL_QUERY.",
                                 param="task_type", code="invalid_value")
        extra["taskType"] = task.upper()

    async def call(chunk: list[str]) -> Batch:
        body = {"requests": [{"model": f"models/{upstream}", "content": {"parts": [{"text": t}]}, **extra}
                             for t in chunk]}
        data = await send(UpstreamRequest(url=url, headers=headers, body=body))
        rows = data.get("embeddings")
        if not isinstance(rows, list):
            raise UpstreamError(f"Provider '{provider}' answered without embeddings.", provider=provider)
        vectors = []
        for row in rows:
            values = row.get("values") if isinstance(row, dict) else None
            if not isinstance(values, list):
                raise UpstreamError(f"Provider '{provider}' answered an embedding without values.",
                                    provider=provider)
            vectors.append([float(v) for v in values])
        return vectors, None

    vectors, usage = await embed_batches(texts, max_batch(target, MAX_BATCH), call, item_tokens)
    return embeddings_answer(vectors, usage)
