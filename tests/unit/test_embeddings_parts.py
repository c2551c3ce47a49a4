"""The pure parts of embeddings: request parsing, the model's limits, batching order, base64."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import pytest

from skylane.core.catalog import load_catalog
from skylane.core.embedding import parse_embedding_request
from skylane.core.errors import InvalidRequest
from skylane.dialects.embeddings import encode_base64
from skylane.providers.bedrock_embeddings import _family
from skylane.providers.embedding import check_request, embed_batches, item_tokens
from tests.conftest import make_settings


def target(model: str):  # noqa: ANN201 (a catalog Target)
    catalog = load_catalog(make_settings(OPENAI_API_KEY="k", AWS_REGION="us-east-1"))
    return catalog.target(model)


def test_inputs_of_every_shape():
    def items(value: object) -> object:
        return parse_embedding_request(f'{{"model": "m", "input": {json.dumps(value)}}}').items

    assert items("a") == ["a"]
    assert items(["a", "b"]) == ["a", "b"]
    assert items([1, 2]) == [[1, 2]]
    assert items([[1], [2, 3]]) == [[1], [2, 3]]
    for bad in ('[]', '[""]', '[true]', '[[]]', '{"x": 1}', '["a", 1]'):
        with pytest.raises(InvalidRequest):
            parse_embedding_request(f'{{"model": "m", "input": {bad}}}')


def test_limits_from_the_catalog():
    small = target("openai/text-embedding-3-small")
    ok = parse_embedding_request(b'{"model": "m", "input": "hi", "dimensions": 64}')
    assert check_request(ok, small) == ["hi"]
    with pytest.raises(InvalidRequest, match="from 1 to 1536"):
        check_request(parse_embedding_request(b'{"model": "m", "input": "hi", "dimensions": 4000}'), small)
    with pytest.raises(InvalidRequest, match="max_input_tokens"):
        check_request(parse_embedding_request(b'{"model": "m", "input": [' + b",".join([b"1"] * 9000) + b']}'),
                      small)


def test_batches_rejoin_in_order_whatever_finishes_first():
    async def call(chunk: list[str]) -> tuple[list[list[float]], int | None]:
        await asyncio.sleep(0.01 * (5 - int(chunk[0])))  # later batches answer first
        return [[float(x)] for x in chunk], None

    texts = [str(i) for i in range(5)]
    vectors, usage = asyncio.run(embed_batches(texts, 2, call, item_tokens))
    assert vectors == [[0.0], [1.0], [2.0], [3.0], [4.0]]
    assert usage == {"prompt_tokens": 5, "total_tokens": 5, "estimated": True}


def test_base64_is_little_endian_float32():
    assert struct.unpack("<2f", base64.b64decode(encode_base64([0.5, -1.25]))) == (0.5, -1.25)


def test_bedrock_families():
    assert _family("amazon.titan-embed-text-v2:0") == "titan"
    assert _family("us.cohere.embed-v4:0") == "cohere"
    assert _family("anthropic.claude-3-haiku") is None
