"""What a dialect's operation needs from its targets and adapters: chat (the default) or embeddings.

A dialect declares `operation` ("chat" | "embeddings"). The pipeline checks, in this one place, that
the model is of the kind the operation needs (`ModelInfo.kind`: a chat completion for an embedding
model, or an embedding for a chat model, is a 400), and runs an embeddings attempt through the
adapter's `embed` with `send` = one call over the pipeline's transport (same timeouts, timing and
error mapping as a chat attempt).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest
from skylane.pipeline.attempt import Timing, complete
from skylane.providers import get_adapter

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest
    from skylane.core.settings import Settings
    from skylane.providers.base import CallContext

__all__ = ["CHAT", "EMBEDDINGS", "embed_attempt", "targets_for"]

CHAT = "chat"
EMBEDDINGS = "embeddings"
_KIND = {CHAT: "chat", EMBEDDINGS: "embedding"}  # operation -> the catalog kind of model it needs


def targets_for(operation: str, targets: list[Target]) -> list[Target]:
    """The targets whose model can serve `operation`: a 400 when the requested model cannot, and
    fallbacks of another kind dropped. Models the catalog does not list pass (the provider decides)."""
    kind = _KIND.get(operation, "chat")

    def fits(t: Target) -> bool:
        return not t.model.in_catalog or t.model.kind == kind

    first = targets[0]
    if not fits(first):
        if kind == "chat":
            msg = (f"Model '{first.requested}' is an embedding model: it cannot answer chat requests "
                   "(use POST /v1/embeddings).")
        else:
            msg = f"Model '{first.requested}' is a {first.model.kind} model: it does not support embeddings."
        raise InvalidRequest(msg, param="model", code="model_not_supported")
    return [t for t in targets if fits(t)]


async def embed_attempt(req: ChatRequest, target: Target, ctx: CallContext, settings: Settings, timing: Timing,
                        deadline: float) -> dict[str, Any]:
    """One embeddings attempt on `target`: the internal embeddings answer (usage included)."""
    from skylane.core.embedding import EmbeddingRequest  # lazy: only embeddings calls need it (cold start)

    assert isinstance(req, EmbeddingRequest)
    adapter = get_adapter(target.provider.protocol)
    send = partial(complete, adapter, target, ctx=ctx, settings=settings, timing=timing, deadline=deadline)
    return await adapter.embed(req, target, ctx, send)
