"""The models endpoints show the current catalog: list prices, reasoning, embeddings."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(gateway_factory: Callable[..., str]) -> str:
    # keys are only needed to mark the providers configured; no upstream call is made
    return gateway_factory(ANTHROPIC_API_KEY="sk-ant-test", OPENAI_API_KEY="sk-test", AWS_REGION="us-east-1")


def test_claude_code_default_model_has_its_list_prices(gw: str) -> None:
    for name in ("anthropic/claude-opus-4-8", "claude-opus-4-8"):
        r = httpx.get(gw + f"/v1/models/{name}")
        assert r.status_code == 200, r.text
        m = r.json()
        assert m["id"] == "anthropic/claude-opus-4-8" and m["object"] == "model" and m["owned_by"] == "anthropic"
        assert m["kind"] == "chat" and m["display_name"] == "Claude Opus 4.8" and m["developer"] == "Anthropic"
        assert m["max_tokens"] == 1_000_000 and m["max_output_tokens"] == 128_000
        assert m["pricing"] == {"priced": True, "input_per_million_usd": 5.0, "output_per_million_usd": 25.0,
                                "cached_input_per_million_usd": 0.5, "cache_write_per_million_usd": 6.25,
                                "cache_write_1h_per_million_usd": 10.0}
        assert m["capabilities"]["reasoning"] is True and m["reasoning"]["style"] == "anthropic_adaptive"
        assert "high" in m["reasoning"]["levels"] and m["embedding"] is None and m["deprecated"] is True


def test_embedding_models_are_listed_but_not_as_chat_models(gw: str) -> None:
    ids = {m["id"] for m in httpx.get(gw + "/v1/models").json()["data"]}
    assert {"openai/text-embedding-3-small", "bedrock/amazon.titan-embed-text-v2:0", "openai/gpt-6.2-sol"} <= ids
    chat = {m["name"] for m in httpx.get(gw + "/v1/chat/models").json()["data"]}
    assert "openai/gpt-6.2-sol" in chat and "anthropic/claude-opus-4-8" in chat
    assert not {i for i in chat if "embed" in i}
    e = httpx.get(gw + "/v1/models/openai/text-embedding-3-small").json()
    assert e["kind"] == "embedding" and e["pricing"]["input_per_million_usd"] == 0.02
    assert e["pricing"]["output_per_million_usd"] is None
    assert e["embedding"] == {"dimensions": 1536, "allowed_dimensions": {"min": 1, "max": 1536},
                              "max_input_tokens": 8192, "max_batch": 2048}
