"""What every embeddings adapter shares: the model's limits, batching, and the internal answer.

An adapter's `embed` checks the request against the model's catalog `embedding` object (allowed
dimensions, max input tokens), splits the inputs into provider-sized batches (`max_batch`, or the
provider's own default for models the catalog does not list), sends them concurrently (at most
`CONCURRENCY` calls at once, each through the pipeline's `send`) and re-joins the vectors in input
order. The internal answer is OpenAI's embeddings list with float vectors; the dialect renders
`encoding_format`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, UpstreamError
from skylane.core.tokens import estimate_text_tokens

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest, Item

__all__ = ["CONCURRENCY", "Batch", "check_request", "embed_batches", "embeddings_answer", "item_tokens", "max_batch",
           "text_items"]

CONCURRENCY = 4  # provider calls in flight at once for one request

# one batch's result: its vectors (in the batch's order) and the input tokens the provider counted (None: unknown)
Batch = tuple[list[list[float]], int | None]


def item_tokens(item: Item) -> int:
    return len(item) if isinstance(item, list) else estimate_text_tokens(len(item))


def check_request(req: EmbeddingRequest, target: Target) -> list[Item]:
    """The inputs, once they pass the model's limits (400s naming the limit)."""
    items = req.items
    info = target.model.embedding or {}
    name = target.requested
    if req.dimensions is not None and info:
        allowed = info.get("allowed_dimensions")
        native = info.get("dimensions")
        if allowed is None:
            raise InvalidRequest(f"Model '{name}' does not support 'dimensions' (its vectors have {native} "
                                 "dimensions).", param="dimensions", code="invalid_value")
        if isinstance(allowed, list) and req.dimensions not in allowed:
            raise InvalidRequest(f"Model '{name}' takes 'dimensions' of {', '.join(map(str, allowed))} "
                                 f"(got {req.dimensions}).", param="dimensions", code="invalid_value")
        if isinstance(allowed, dict) and not (int(allowed.get("min", 1)) <= req.dimensions
                                              <= int(allowed.get("max", native or req.dimensions))):
            raise InvalidRequest(f"Model '{name}' takes 'dimensions' from {allowed.get('min', 1)} to "
                                 f"{allowed.get('max', native)} (got {req.dimensions}).", param="dimensions",
                                 code="invalid_value")
    limit = info.get("max_input_tokens")
    if limit:
        for i, item in enumerate(items):
            tokens = item_tokens(item)
            if tokens > int(limit):
                about = "" if isinstance(item, list) else "about "
                raise InvalidRequest(f"Input {i} is too long: {about}{tokens} tokens; model '{name}' takes at most "
                                     f"{limit} tokens per input (max_input_tokens).", param="input",
                                     code="context_length_exceeded")
    return items


def text_items(items: Sequence[Item], target: Target) -> list[str]:
    """The inputs as texts, for providers that take no token ids (Gemini, Bedrock)."""
    if any(isinstance(i, list) for i in items):
        raise InvalidRequest(f"Model '{target.requested}' takes text inputs only; token-id inputs are "
                             "accepted by the OpenAI-compatible providers.", param="input", code="invalid_value")
    return [i for i in items if isinstance(i, str)]


def max_batch(target: Target, default: int) -> int:
    info = target.model.embedding or {}
    return max(1, int(info.get("max_batch") or default))


async def embed_batches[T](items: Sequence[T], size: int, call: Callable[[list[T]], Awaitable[Batch]],
                           estimate: Callable[[T], int]) -> tuple[list[list[float]], dict[str, Any]]:
    """Send `items` in batches of `size` (at most CONCURRENCY at once); the vectors in input order and
    the usage (estimated where the provider did not count)."""
    gate = asyncio.Semaphore(CONCURRENCY)
    chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]

    async def one(chunk: list[T]) -> Batch:
        async with gate:
            return await call(chunk)

    if len(chunks) == 1:
        results = [await call(chunks[0])]
    else:
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(one(c)) for c in chunks]
        except BaseExceptionGroup as group:  # the first failure is the attempt's (the others were cancelled)
            raise group.exceptions[0] from None
        results = [t.result() for t in tasks]
    vectors: list[list[float]] = []
    tokens = 0
    estimated = False
    for chunk, (vecs, counted) in zip(chunks, results, strict=True):
        if len(vecs) != len(chunk):
            raise UpstreamError(f"The provider answered {len(vecs)} embeddings for {len(chunk)} inputs.")
        vectors.extend(vecs)
        if counted is None:
            estimated = True
            tokens += sum(estimate(i) for i in chunk)
        else:
            tokens += counted
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if estimated:
        usage["estimated"] = True
    return vectors, usage


def embeddings_answer(vectors: list[list[float]], usage: dict[str, Any]) -> dict[str, Any]:
    """The internal embeddings answer (OpenAI's list; `model` is set by the dialect)."""
    return {"object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "model": "", "usage": usage}
