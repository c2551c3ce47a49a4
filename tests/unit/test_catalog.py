"""Catalog: resolution, aliases, passthrough, configuration, operator overrides, prices."""

from __future__ import annotations

import json

import pytest

from skylane.core.catalog import load_catalog
from skylane.core.errors import InvalidRequest, ModelNotFound
from skylane.core.settings import Settings


def catalog(**env: str):
    return load_catalog(Settings.from_env(env))


def test_resolve_id_alias_and_passthrough():
    c = catalog(OPENAI_API_KEY="k")
    assert c.target("openai/gpt-4o").upstream_model == "gpt-4o"
    t = c.target("gpt-4o-mini")
    assert t.model.id == "openai/gpt-4o-mini" and t.requested == "gpt-4o-mini"
    p = c.target("openai/gpt-5-preview")
    assert p.upstream_model == "gpt-5-preview" and not p.model.in_catalog
    assert c.lookup("openrouter/meta/llama-3").upstream_id == "meta/llama-3"


def test_unknown_model_and_unconfigured_provider():
    c = catalog(OPENAI_API_KEY="k")
    with pytest.raises(ModelNotFound, match="Model not found: nope/x"):
        c.target("nope/x")
    with pytest.raises(ModelNotFound):
        c.target("gpt-99")
    with pytest.raises(InvalidRequest, match="ANTHROPIC_API_KEY"):
        c.target("anthropic/claude-sonnet-4-20250514")


def test_configured_models_follow_env():
    c = catalog(GROQ_API_KEY="k")
    providers = {m.provider for m in c.configured_models()}
    assert providers == {"groq"}
    assert {m.provider for m in catalog(LOCAL_BASE_URL="http://127.0.0.1:1/v1").configured_models()} == {"local"}
    assert "bedrock" in {m.provider for m in catalog(AWS_REGION="us-east-1").configured_models()}


def test_base_url_override_and_default():
    c = catalog(OPENAI_API_KEY="k", OPENAI_BASE_URL="http://127.0.0.1:9/v1/")
    assert c.base_url(c.providers["openai"]) == "http://127.0.0.1:9/v1"
    assert c.base_url(c.providers["groq"]) == "https://api.groq.com/openai/v1"


def test_cost_in_micro_dollars():
    m = catalog().lookup("openai/gpt-4o")  # $2.50 in, $10 out, $1.25 cached per 1M
    assert m.cost_micros(1000, 500) == 2500 + 5000
    assert m.cost_micros(1000, 0, cached_tokens=400) == 600 * 2.5 + 400 * 1.25
    assert catalog().lookup("openai/some-new-model").cost_micros(10**6, 10**6) == 0


def test_operator_catalog_merges(tmp_path):
    extra = {"providers": {"myvllm": {"protocol": "openai", "base_url": "http://127.0.0.1:1/v1",
                                      "key_env": "MYVLLM_API_KEY"},
                           "openai": {"passthrough": False}},
             "models": [{"id": "myvllm/qwen", "aliases": ["qwen"], "pricing": {"input": 1, "output": 2},
                         "fallbacks": ["openai/gpt-4o"]},
                        {"id": "openai/gpt-4o", "display_name": "Renamed", "pricing": {"input": 9, "output": 9}}]}
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(extra))
    c = catalog(SKYLANE_CATALOG=str(path), MYVLLM_API_KEY="k", OPENAI_API_KEY="k")
    t = c.target("qwen")
    assert t.model.id == "myvllm/qwen" and t.model.fallbacks == ("openai/gpt-4o",)
    assert c.lookup("openai/gpt-4o").display_name == "Renamed"
    with pytest.raises(ModelNotFound):
        c.lookup("openai/not-in-catalog")  # passthrough turned off
