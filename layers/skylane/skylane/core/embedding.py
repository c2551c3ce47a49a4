"""The internal embeddings request: OpenAI's `POST /v1/embeddings` body, validated.

`EmbeddingRequest` is a `ChatRequest` (no messages) so that the one pipeline carries it like any
other request: `model` / `models` for the targets, `stream` always False, `output_limit` 0 (TPM
counts input tokens only), and `raw` for the log line. Its own fields:

    input            a string, a list of strings, a list of token ids or a list of token-id lists
    encoding_format  "float" | "base64" (rendered by the dialect; providers are always asked floats)
    dimensions       the output size, where the model allows shortening
    user             passed on where the provider takes it

Extension fields (unknown to OpenAI, kept in `model_extra`): `task_type` (Gemini's taskType, e.g.
RETRIEVAL_QUERY), `input_type` (Cohere's, e.g. search_query; default search_document),
`normalize` (Titan; default true), `truncate` (Cohere; NONE | START | END).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from skylane.core.errors import InvalidRequest
from skylane.core.request import ChatRequest, Int, Message, integral_fields, with_model

__all__ = ["MAX_INPUTS", "EmbeddingRequest", "Item", "parse_embedding_request"]

MAX_INPUTS = 8192  # inputs per request to the gateway (split into provider-sized calls)

# one input: a text or a list of token ids
Item = str | list[int]

_Tokens = Annotated[list[Int], Field(min_length=1)]
_Text = Annotated[str, Field(min_length=1)]  # OpenAI refuses empty inputs


class EmbeddingRequest(ChatRequest):
    messages: Annotated[list[Message], Field(max_length=0)] = Field(default_factory=list)
    input: (_Text | Annotated[list[_Text], Field(min_length=1)] | _Tokens
           | Annotated[list[_Tokens], Field(min_length=1)])
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[Int, Field(ge=1, le=65536)] | None = None

    @property
    def output_limit(self) -> int:
        return 0  # embeddings produce no output tokens

    @property
    def items(self) -> list[Item]:
        """The inputs as a list, in order (one string or one token list each)."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [[i for i in value if isinstance(i, int)]]  # one token-id list
        return [i for i in value if isinstance(i, str | list)]

    def extension(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


_adapter: TypeAdapter[EmbeddingRequest] = TypeAdapter(EmbeddingRequest)


def parse_embedding_request(body: bytes | str, default_model: str | None = None) -> EmbeddingRequest:
    """Parse and validate an embeddings body; raise InvalidRequest naming the field."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("We could not parse the JSON body of your request. The body must be valid JSON.",
                             code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    data = with_model(data, default_model)
    if "input" not in data:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required")
    if "messages" in data:
        raise InvalidRequest("Unrecognized request argument supplied: messages", param="messages",
                             code="invalid_value")
    data.pop("stream", None)  # embeddings never stream
    try:
        req = _adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else "input"
        if param == "input":
            msg = ("'input' must be a non-empty string, a list of strings, a list of token ids "
                   "or a list of token-id lists.")
        else:
            msg = f"Invalid value for '{param}': {first['msg']}."
        raise InvalidRequest(msg, param=param, code="invalid_value") from None
    items = req.items
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"Too many inputs: {len(items)} (at most {MAX_INPUTS} per request).", param="input",
                             code="invalid_value")
    if any(isinstance(i, str) and not i for i in items):
        raise InvalidRequest("'input' cannot contain an empty string.", param="input", code="invalid_value")
    req._raw = integral_fields(data, req)
    return req
