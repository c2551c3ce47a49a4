"""The model catalog: providers, models, aliases, prices and capabilities.

Data lives in `catalog.json` beside this module; an operator file named by `SKYLANE_CATALOG`
(same format) is merged over it: providers by name (fields updated), models by id (replaced).
Prices are USD per million tokens in the file; inside, costs are integer micro-dollars, which
makes a token count times a per-million price exactly the micro-dollar cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from skylane.core.errors import GatewayMisconfigured, InvalidRequest, ModelNotFound
from skylane.core.redact import remember_secret
from skylane.core.settings import Settings

__all__ = ["Catalog", "EnvOnly", "ModelInfo", "Provider", "ProviderEnv", "Target", "load_catalog"]

_DATA = Path(__file__).with_name("catalog.json")
_CREATED = 1_700_000_000  # a fixed `created` for catalog models (the spec requires an int)


class ProviderEnv(Protocol):
    """Where provider variables come from: get(name, default) -> value or default."""

    def get(self, name: str, default: str | None = None) -> str | None: ...


class EnvOnly:
    """Provider variables from the process environment only (no secret configured)."""

    def __init__(self, settings: Settings) -> None:
        self._env = settings.env

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._env.get(name) or default


@dataclass(frozen=True)
class Provider:
    name: str
    protocol: str  # openai | anthropic | bedrock | gemini
    display_name: str
    base_url: str | None
    key_env: str | None
    base_url_env: str | None
    key_optional: bool = False
    # a provider without a key of its own (Bedrock: IAM): configured when any of these variables is set
    configured_by: tuple[str, ...] = ()
    passthrough_video: bool = False  # models it serves that the catalog does not list may take video
    passthrough: bool = True  # models not in the catalog may be sent through
    stream_usage: bool = True  # the upstream accepts stream_options (include_usage)
    max_completion_tokens: bool = True  # the upstream accepts max_completion_tokens (else sent as max_tokens)
    responses: bool = False  # the upstream serves OpenAI's Responses API (/responses): native passthrough
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    id: str  # provider/model as clients address it
    provider: str
    upstream_id: str  # what the provider calls it
    developer: str
    display_name: str
    context_window: int | None
    max_output_tokens: int | None
    vision: bool
    video: bool
    tools: bool
    json: bool
    input_price: float  # USD per 1M tokens
    output_price: float
    cached_input_price: float | None
    aliases: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    in_catalog: bool = True
    priced: bool = False  # the catalog row has a `pricing` entry (passthrough models never do)
    kind: str = "chat"  # chat | embedding
    cache_write_price: float | None = None  # USD per 1M prompt tokens written to the cache (5-minute tier)
    cache_write_1h_price: float | None = None  # the 1-hour tier, where the provider has one
    # reasoning controls of the model family (None: no reasoning), e.g. {"style": "anthropic_budget",
    # "levels": [...], "min_budget": 1024}; read by the adapters, documented in docs/catalog.md
    reasoning: Mapping[str, Any] | None = None
    # embedding models: {"dimensions": 1536, "allowed_dimensions": [...] | {"min", "max"},
    # "max_input_tokens": 8191, "max_batch": 2048}
    embedding: Mapping[str, Any] | None = None
    deprecated: bool = False

    def cost_micros(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                    cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0) -> int:
        """Cost in micro-dollars. `prompt_tokens` includes cached and cache-written tokens (OpenAI's
        convention); each part is priced at its own rate when the catalog has one, else as input."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        w5 = min(max(cache_write_tokens, 0), prompt_tokens - cached)
        w1h = min(max(cache_write_1h_tokens, 0), prompt_tokens - cached - w5)
        def rate(price: float | None) -> float:
            return self.input_price if price is None else price
        micros = (
            (prompt_tokens - cached - w5 - w1h) * self.input_price
            + cached * rate(self.cached_input_price)
            + w5 * rate(self.cache_write_price)
            + w1h * rate(self.cache_write_1h_price if self.cache_write_1h_price is not None
                         else self.cache_write_price)
            + completion_tokens * self.output_price
        )
        return int(round(micros))

    def cost_of(self, usage: Mapping[str, Any] | None) -> int:
        """The cost of an internal (OpenAI-shaped) usage dict: prompt_tokens_details.cached_tokens,
        .cache_write_tokens and .cache_write_1h_tokens priced at their rates; reasoning tokens are part
        of completion_tokens and priced as output."""
        if not usage:
            return 0
        details = usage.get("prompt_tokens_details") or {}
        return self.cost_micros(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0),
            int(details.get("cache_write_tokens") or 0),
            int(details.get("cache_write_1h_tokens") or 0),
        )

    def openai_model(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": _CREATED, "owned_by": self.provider}

    def detail(self) -> dict[str, Any]:
        """The richer record for /v1/models/{id}: limits, capabilities, list prices (USD per million
        tokens; null where the catalog has no separate rate), reasoning controls, embedding sizes."""
        return {
            **self.openai_model(),
            "name": self.id,
            "kind": self.kind,
            "developer": self.developer,
            "display_name": self.display_name,
            "max_tokens": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "vision": self.vision,
            "capabilities": {"vision": self.vision, "video": self.video, "tools": self.tools, "json": self.json,
                             "reasoning": self.reasoning is not None},
            "pricing": {
                "priced": self.priced,
                "input_per_million_usd": self.input_price,
                "output_per_million_usd": None if self.kind == "embedding" else self.output_price,
                "cached_input_per_million_usd": self.cached_input_price,
                "cache_write_per_million_usd": self.cache_write_price,
                "cache_write_1h_per_million_usd": self.cache_write_1h_price,
            },
            "reasoning": dict(self.reasoning) if self.reasoning is not None else None,
            "embedding": dict(self.embedding) if self.embedding is not None else None,
            "deprecated": self.deprecated,
        }


@dataclass(frozen=True)
class Target:
    """One concrete attempt: a provider, a model, and the name the client used."""

    provider: Provider
    model: ModelInfo
    requested: str  # the name the client sent (reported back in `model`)

    @property
    def upstream_model(self) -> str:
        return self.model.upstream_id


def _model_from(row: dict[str, Any]) -> ModelInfo:
    model_id = row["id"]
    provider, _, rest = model_id.partition("/")
    if not rest:
        raise GatewayMisconfigured(f"catalog model id must be provider/model: {model_id}")
    caps = row.get("capabilities", {})
    price = row.get("pricing", {})
    return ModelInfo(
        id=model_id,
        provider=provider,
        upstream_id=row.get("upstream_id", rest),
        developer=row.get("developer", provider),
        display_name=row.get("display_name", rest),
        context_window=row.get("context_window"),
        max_output_tokens=row.get("max_output_tokens"),
        vision=bool(caps.get("vision", False)),
        video=bool(caps.get("video", False)),
        tools=bool(caps.get("tools", True)),
        json=bool(caps.get("json", True)),
        input_price=float(price.get("input", 0)),
        output_price=float(price.get("output", 0)),
        cached_input_price=float(price["cached_input"]) if price.get("cached_input") is not None else None,
        aliases=tuple(row.get("aliases", ())),
        fallbacks=tuple(row.get("fallbacks", ())),
        priced="pricing" in row,
        kind=str(row.get("kind", "chat")),
        cache_write_price=_price(price, "cache_write"),
        cache_write_1h_price=_price(price, "cache_write_1h"),
        reasoning=row.get("reasoning"),
        embedding=row.get("embedding"),
        deprecated=bool(row.get("deprecated", False)),
    )


def _price(price: Mapping[str, Any], name: str) -> float | None:
    value = price.get(name)
    return float(value) if value is not None else None


def _provider_from(name: str, row: dict[str, Any]) -> Provider:
    return Provider(
        name=name,
        protocol=row["protocol"],
        display_name=row.get("display_name", name),
        base_url=row.get("base_url"),
        key_env=row.get("key_env"),
        base_url_env=row.get("base_url_env"),
        key_optional=bool(row.get("key_optional", False)),
        configured_by=tuple(row.get("configured_by", ())),
        passthrough_video=bool(row.get("passthrough_video", False)),
        passthrough=bool(row.get("passthrough", True)),
        stream_usage=bool(row.get("stream_usage", True)),
        max_completion_tokens=bool(row.get("max_completion_tokens", True)),
        responses=bool(row.get("responses", False)),
        extra_headers=dict(row.get("extra_headers", {})),
    )


class Catalog:
    def __init__(self, data: dict[str, Any], settings: Settings, env: ProviderEnv | None = None) -> None:
        self.settings = settings
        # provider variables (keys, base URLs, region): the environment, or what the caller adds to it
        # (ops.secrets.ProviderEnv: a Secrets Manager secret read at start-up)
        self.env: ProviderEnv = env or EnvOnly(settings)
        self.providers: dict[str, Provider] = {
            name: _provider_from(name, row) for name, row in data.get("providers", {}).items()
        }
        self.models: dict[str, ModelInfo] = {}
        self.aliases: dict[str, str] = {}
        for row in data.get("models", []):
            info = _model_from(row)
            if info.provider not in self.providers:
                raise GatewayMisconfigured(f"catalog model {info.id} names unknown provider {info.provider}")
            self.models[info.id] = info
            for alias in info.aliases:
                self.aliases[alias] = info.id
        self._configured: dict[str, tuple[float, bool]] = {}

    # ---- provider configuration ------------------------------------------------------------

    def provider_key(self, provider: Provider) -> str | None:
        key = self.env.get(provider.key_env) if provider.key_env else None
        remember_secret(key)  # from now on redacted from every error message and content log
        return key

    def base_url(self, provider: Provider) -> str:
        url = (self.env.get(provider.base_url_env) if provider.base_url_env else None) or provider.base_url
        if not url:
            raise GatewayMisconfigured(f"provider {provider.name} has no base URL")
        return url.rstrip("/")

    def is_configured(self, provider: Provider) -> bool:
        if provider.configured_by:
            # no key of ours (e.g. IAM credentials from the role): any of these variables configures it
            return any(self.env.get(name) for name in provider.configured_by)
        if provider.key_optional:
            return bool(
                self.provider_key(provider) or (provider.base_url_env and self.env.get(provider.base_url_env))
            )
        return bool(self.provider_key(provider))

    def configured_models(self) -> list[ModelInfo]:
        ok = {name for name, p in self.providers.items() if self.is_configured(p)}
        return [m for m in self.models.values() if m.provider in ok]

    # ---- resolution --------------------------------------------------------------------------

    def lookup(self, name: str) -> ModelInfo:
        """Catalog or passthrough model for `name`; ModelNotFound when neither applies."""
        if name in self.models:
            return self.models[name]
        if name in self.aliases:
            return self.models[self.aliases[name]]
        provider_name, sep, rest = name.partition("/")
        provider = self.providers.get(provider_name) if sep and rest else None
        if provider is not None and provider.passthrough:
            return ModelInfo(
                id=name,
                provider=provider_name,
                upstream_id=rest,
                developer=provider.display_name,
                display_name=rest,
                context_window=None,
                max_output_tokens=None,
                vision=True,
                video=provider.passthrough_video,
                tools=True,
                json=True,
                input_price=0.0,
                output_price=0.0,
                cached_input_price=None,
                in_catalog=False,
            )
        raise ModelNotFound(f"Model not found: {name}", param="model")

    def target(self, name: str) -> Target:
        info = self.lookup(name)
        provider = self.providers[info.provider]
        if not self.is_configured(provider):
            hint = f"set {provider.key_env}" if provider.key_env else "set AWS_REGION and AWS credentials"
            raise InvalidRequest(
                f"Provider '{provider.name}' is not configured on this gateway ({hint}).",
                param="model",
                code="provider_not_configured",
            )
        return Target(provider=provider, model=info, requested=name)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    providers = {k: dict(v) for k, v in base.get("providers", {}).items()}
    for name, row in extra.get("providers", {}).items():
        providers.setdefault(name, {}).update(row)
    models = {row["id"]: row for row in base.get("models", [])}
    for row in extra.get("models", []):
        models[row["id"]] = row
    return {"providers": providers, "models": list(models.values())}


_cache: dict[str | None, dict[str, Any]] = {}


def load_catalog(settings: Settings, env: ProviderEnv | None = None) -> Catalog:
    """The catalog for these settings; the files are read once per process."""
    key = settings.catalog_path
    data = _cache.get(key)
    if data is None:
        data = json.loads(_DATA.read_text())
        if settings.catalog_path:
            try:
                extra = json.loads(Path(settings.catalog_path).read_text())
            except (OSError, ValueError) as exc:
                raise GatewayMisconfigured(
                    f"SKYLANE_CATALOG {settings.catalog_path!r} could not be read: {exc}"
                ) from None
            data = _merge(data, extra)
        _cache[key] = data
    return Catalog(data, settings, env)
