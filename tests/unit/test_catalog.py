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


# ---- the built-in catalog is complete and consistent -------------------------------------------

_STYLES = {"openai", "anthropic_budget", "anthropic_adaptive", "gemini_budget", "gemini_level", "bedrock_anthropic",
           "bedrock_nova", "deepseek"}
_BUDGET_STYLES = {"anthropic_budget", "gemini_budget", "bedrock_anthropic"}


def _builtin() -> dict:
    from skylane.core import catalog as module

    return json.loads(module._DATA.read_text())


def test_every_builtin_row_is_complete_and_consistent():
    data = _builtin()
    providers = data["providers"]
    ids = [row["id"] for row in data["models"]]
    assert len(ids) == len(set(ids)), "duplicate model ids"
    seen_aliases: dict[str, str] = {}
    for row in data["models"]:
        mid = row["id"]
        provider, _, rest = mid.partition("/")
        assert provider in providers and rest, f"{mid}: id must be provider/model with a known provider"
        kind = row.get("kind", "chat")
        assert kind in ("chat", "embedding"), mid
        assert row.get("developer") and row.get("display_name"), mid
        for alias in row.get("aliases", []):
            assert alias not in seen_aliases, f"alias {alias} on {mid} and {seen_aliases.get(alias)}"
            assert alias not in ids or alias == mid, f"alias {alias} of {mid} is another model's id"
            seen_aliases[alias] = mid
        ctx = row.get("context_window")
        assert isinstance(ctx, int) and ctx > 0, f"{mid}: context_window"
        assert set(row.get("capabilities", {})) >= {"vision", "video", "tools", "json", "reasoning"}, mid
        price = row.get("pricing")
        assert isinstance(price, dict) and "input" in price, f"{mid}: every built-in row is priced"
        for name, value in price.items():
            assert name in ("input", "output", "cached_input", "cache_write", "cache_write_1h"), f"{mid}: {name}"
            assert isinstance(value, (int, float)) and value >= 0, f"{mid}: {name} = {value}"
        if "cached_input" in price:
            assert price["cached_input"] <= price["input"], f"{mid}: a cache hit costs more than input"
        if "cache_write" in price:
            assert price["cache_write"] >= price["input"] * 0.99, f"{mid}: cache write below input"
        if "cache_write_1h" in price:
            assert price["cache_write_1h"] >= price.get("cache_write", price["input"]), f"{mid}: 1h below 5m"
        if kind == "embedding":
            assert "output" not in price, f"{mid}: embeddings have no output price"
            emb = row.get("embedding")
            assert isinstance(emb, dict), f"{mid}: embedding object"
            assert emb["dimensions"] > 0 and emb["max_input_tokens"] > 0 and emb["max_batch"] >= 1, mid
            allowed = emb["allowed_dimensions"]
            if isinstance(allowed, dict):
                assert 1 <= allowed["min"] <= emb["dimensions"] <= allowed["max"], mid
            else:
                assert emb["dimensions"] in allowed and all(d > 0 for d in allowed), mid
            assert "reasoning" not in row, mid
        else:
            assert "output" in price, f"{mid}: chat rows have an output price"
            out = row.get("max_output_tokens")
            assert isinstance(out, int) and 0 < out <= ctx, f"{mid}: max_output_tokens {out} vs context {ctx}"
            assert "embedding" not in row, mid
        reasoning = row.get("reasoning")
        assert (reasoning is not None) == bool(row["capabilities"]["reasoning"]), f"{mid}: reasoning capability"
        if reasoning is not None:
            assert reasoning["style"] in _STYLES, f"{mid}: {reasoning['style']}"
            levels = reasoning["levels"]
            assert levels and all(isinstance(level, str) and level for level in levels), mid
            assert reasoning.get("default", levels[0]) in levels, f"{mid}: default level"
            if reasoning["style"] in _BUDGET_STYLES:
                budget = reasoning["budget"]
                assert 0 <= budget["min"] < budget["max"] < row["max_output_tokens"] + 1, f"{mid}: budget"
        assert isinstance(row.get("deprecated", False), bool), mid


def test_catalog_parses_every_field():
    c = catalog()
    opus = c.lookup("claude-opus-4-8")
    assert opus.id == "anthropic/claude-opus-4-8" and opus.priced and opus.kind == "chat"
    assert (opus.input_price, opus.output_price, opus.cached_input_price) == (5.0, 25.0, 0.5)
    assert (opus.cache_write_price, opus.cache_write_1h_price) == (6.25, 10.0)
    assert opus.reasoning is not None and opus.reasoning["style"] == "anthropic_adaptive"
    assert opus.deprecated is True  # a legacy model on Anthropic's page, still served
    emb = c.lookup("bedrock/amazon.titan-embed-text-v2:0")
    assert emb.kind == "embedding" and emb.embedding is not None
    assert emb.embedding["allowed_dimensions"] == [256, 512, 1024]
    assert emb.detail()["pricing"]["output_per_million_usd"] is None and emb.detail()["embedding"]["max_batch"] == 1
    # 1000 prompt tokens of which 200 cache hits, 300 written for 5 min, 100 for 1 h; 50 out
    usage = {"prompt_tokens": 1000, "completion_tokens": 50,
             "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 300, "cache_write_1h_tokens": 100}}
    assert opus.cost_of(usage) == round(400 * 5 + 200 * 0.5 + 300 * 6.25 + 100 * 10 + 50 * 25)
    assert c.providers["mistral"].stream_usage is False and c.providers["mistral"].max_completion_tokens is False


def test_agent_defaults_are_priced_rows():
    c = catalog()
    assert c.lookup("claude-opus-4-8").priced  # Claude Code's default model
    sol = c.lookup("gpt-6.2-sol")  # Codex CLI's default model
    assert sol.id == "openai/gpt-6.2-sol" and sol.priced and sol.cache_write_price == 2.5
