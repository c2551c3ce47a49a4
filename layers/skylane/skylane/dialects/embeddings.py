"""The OpenAI embeddings dialect: POST /v1/embeddings (also /embeddings, /api/embeddings).

The request is `core.embedding.EmbeddingRequest`; the pipeline runs its "embeddings" operation
(adapters' `embed`). The answer is OpenAI's list, in input order:

    {"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
     "usage": {"prompt_tokens", "total_tokens", "cost"}}

with each embedding a list of floats, or (`encoding_format: "base64"`, what the OpenAI SDK asks by
default) the base64 of its little-endian float32 bytes. Embeddings never stream.
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

from skylane.core.errors import SkylaneError, envelope
from skylane.core.settings import Settings
from skylane.dialects.base import CallView, Dialect, StreamRenderer
from skylane.pipeline.operations import EMBEDDINGS

if TYPE_CHECKING:
    from skylane.core.embedding import EmbeddingRequest

__all__ = ["EMBEDDING_PATHS", "EMBEDDINGS_DIALECT", "EmbeddingsDialect", "encode_base64"]

EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings", "/api/embeddings")
_USAGE_FIELDS = ("prompt_tokens", "total_tokens", "estimated", "cost")


def encode_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64 encoding: little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class _NoStream(StreamRenderer):
    """Embeddings never stream (the request has no `stream`); never used."""

    def chunk(self, c: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def end(self, usage: dict[str, Any] | None) -> bytes:
        raise NotImplementedError

    def error(self, err: SkylaneError) -> bytes:
        raise NotImplementedError


class EmbeddingsDialect(Dialect):
    name = "embeddings"
    operation = EMBEDDINGS

    def parse(self, body: bytes, settings: Settings) -> EmbeddingRequest:
        from skylane.core.embedding import parse_embedding_request  # lazy: its models only when called

        return parse_embedding_request(body)

    def answer(self, resp: dict[str, Any], view: CallView) -> dict[str, Any]:
        req = view.req
        b64 = getattr(req, "encoding_format", None) == "base64"
        data = [{"object": "embedding", "index": row["index"],
                 "embedding": encode_base64(row["embedding"]) if b64 else row["embedding"]}
                for row in resp.get("data") or ()]
        usage = resp.get("usage") or {}
        return {"object": "list", "data": data, "model": view.model,
                "usage": {k: usage[k] for k in _USAGE_FIELDS if k in usage}}

    def stream(self, view: CallView) -> StreamRenderer:
        return _NoStream()

    def error_body(self, err: SkylaneError) -> dict[str, Any]:
        return envelope(err)


EMBEDDINGS_DIALECT = EmbeddingsDialect()
