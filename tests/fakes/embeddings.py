"""Embeddings for the fake providers, in each provider's wire format and with its limits.

Vectors are deterministic from the input (`vector(key_of(item), dims)`), built from SHA-256 bytes
as (2b - 255) / 256, which float32 holds exactly, so tests can check the base64 round trip to the bit.

- OpenAI `POST /v1/embeddings`: text-embedding-3-small (1536) / -3-large (3072) / ada-002 (1536);
  at most 2048 inputs; `dimensions` up to the model's size, refused for ada-002 (as OpenAI does);
  `encoding_format` float or base64 (little-endian float32); usage prompt_tokens/total_tokens.
- Gemini `:batchEmbedContents`: at most 100 requests per batch, each naming the same model;
  `outputDimensionality`; no usage in the answer (as Google's API).
- Bedrock InvokeModel: Titan Text Embeddings v2 (one `inputText`, dimensions 256/512/1024,
  `inputTextTokenCount`) and Cohere Embed v3 (at most 96 `texts`, `input_type` required; token count
  in the `x-amzn-bedrock-input-token-count` header, as Bedrock sends it).
Each starts with "error:<status>" → that status with the provider's error body.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

__all__ = ["bedrock_invoke", "gemini_batch_embed", "key_of", "openai_embeddings", "tokens_of", "vector"]

OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
GEMINI_DIMS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
OPENAI_MAX_INPUTS = 2048
GEMINI_MAX_BATCH = 100
COHERE_MAX_TEXTS = 96
TITAN_DIMS = (256, 512, 1024)


def key_of(item: Any) -> str:
    """The text a vector is derived from (token-id lists: their ids)."""
    return item if isinstance(item, str) else "ids:" + ",".join(map(str, item))


def vector(key: str, dims: int) -> list[float]:
    out: list[float] = []
    block = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{key}#{block}".encode()).digest()
        out.extend((2 * b - 255) / 256 for b in digest)
        block += 1
    return out[:dims]


def tokens_of(item: Any) -> int:
    return len(item) if isinstance(item, list) else len(item.split()) + 1


def _openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> tuple[int, dict]:
    etype = "server_error" if status >= 500 else "invalid_request_error"
    return status, {"error": {"message": message, "type": etype, "param": param, "code": code}}


def openai_embeddings(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    model = body.get("model")
    raw = body.get("input")
    if raw is None:
        return _openai_error(400, "you must provide an input", "input")
    if model not in OPENAI_DIMS:
        return _openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                             None, "model_not_found")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        return _openai_error(400, "'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", "input")
    if len(items) > OPENAI_MAX_INPUTS:
        return _openai_error(400, f"'$.input' is invalid: at most {OPENAI_MAX_INPUTS} inputs per request "
                             f"(got {len(items)}).", "input")
    first = items[0]
    if isinstance(first, str) and first.startswith("error:"):
        return _openai_error(int(first.split(":", 1)[1]), "fake failure")
    dims = OPENAI_DIMS[model]
    if body.get("dimensions") is not None:
        if model == "text-embedding-ada-002":
            return _openai_error(400, "This model does not support specifying dimensions.", "dimensions")
        want = body["dimensions"]
        if not isinstance(want, int) or not 1 <= want <= dims:
            return _openai_error(400, f"This model does not support dimensions of {want}.", "dimensions")
        dims = want
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        return _openai_error(400, f"'{fmt}' is not one of ['float', 'base64'] - 'encoding_format'",
                             "encoding_format")
    data = []
    for i, item in enumerate(items):
        vec = vector(key_of(item), dims)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if fmt == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(tokens_of(i) for i in items)
    return 200, {"object": "list", "data": data, "model": model,
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _google_error(code: int, message: str) -> tuple[int, dict[str, Any]]:
    status = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}.get(code, "INTERNAL")
    return code, {"error": {"code": code, "message": message, "status": status}}


def gemini_batch_embed(model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if model not in GEMINI_DIMS:
        return _google_error(404, f"models/{model} is not found for API version v1beta, or is not supported "
                             "for embedContent.")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _google_error(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > GEMINI_MAX_BATCH:
        return _google_error(400, f"* BatchEmbedContentsRequest.requests: at most {GEMINI_MAX_BATCH} requests "
                             "can be in one batch")
    out = []
    for i, r in enumerate(requests):
        if r.get("model") != f"models/{model}":
            return _google_error(400, f"Model name in request {i} ({r.get('model')}) does not match the batch "
                                 f"model models/{model}.")
        parts = (r.get("content") or {}).get("parts") or []
        text = " ".join(p.get("text", "") for p in parts)
        if not text:
            return _google_error(400, f"* BatchEmbedContentsRequest.requests[{i}].content: contents is not "
                                 "specified")
        if text.startswith("error:"):
            return _google_error(int(text.split(":", 1)[1]), "fake failure")
        dims = GEMINI_DIMS[model]
        want = r.get("outputDimensionality")
        if want is not None:
            if not isinstance(want, int) or not 1 <= want <= dims:
                return _google_error(400, f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: "
                                     f"must be between 1 and {dims}")
            dims = want
        out.append({"values": vector(text, dims)})
    return 200, {"embeddings": out}


def _aws_error(status: int, etype: str, message: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    return status, {"x-amzn-errortype": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"}, \
        {"message": message}


def bedrock_invoke(model_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]] | None:
    """Titan / Cohere embeddings over InvokeModel: (status, headers, JSON body); None for other models."""
    if model_id.startswith("amazon.titan-embed-text"):
        text = body.get("inputText")
        extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
        if extra:
            return _aws_error(400, "ValidationException", f"Malformed input request: extraneous key "
                              f"[{sorted(extra)[0]}] is not permitted, please reformat your input and try again.")
        if not isinstance(text, str) or not text:
            return _aws_error(400, "ValidationException", "Malformed input request: expected minLength: 1, "
                              "please reformat your input and try again.")
        if text.startswith("error:"):
            return _aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        dims = body.get("dimensions", 1024)
        if dims not in TITAN_DIMS:
            return _aws_error(400, "ValidationException", f"Malformed input request: #/dimensions: {dims} is not "
                              "a valid enum value, please reformat your input and try again.")
        tokens = tokens_of(text)
        return 200, {}, {"embedding": vector(text, dims), "inputTextTokenCount": tokens,
                         "embeddingsByType": {"float": vector(text, dims)}}
    if model_id.startswith("cohere.embed"):
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts:
            return _aws_error(400, "ValidationException", "Malformed input request: #: required key [texts] not "
                              "found, please reformat your input and try again.")
        if len(texts) > COHERE_MAX_TEXTS:
            return _aws_error(400, "ValidationException", f"Malformed input request: #/texts: expected maxItems: "
                              f"{COHERE_MAX_TEXTS}, actual: {len(texts)}, please reformat your input and try again.")
        if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
            return _aws_error(400, "ValidationException", "Malformed input request: #/input_type: required, "
                              "please reformat your input and try again.")
        tokens = sum(tokens_of(t) for t in texts)
        return 200, {"x-amzn-bedrock-input-token-count": str(tokens)}, {
            "embeddings": [vector(t, 1024) for t in texts], "id": "fake-cohere-id",
            "response_type": "embeddings_floats", "texts": [t.lower() for t in texts]}
    return None
