"""The provider registry: protocol name → adapter module, imported on first use.

An OpenAI-compatible provider is a data row in catalog.json (protocol "openai"), not a module.
Each module exposes `ADAPTER`, an instance of a `providers.base.Adapter` subclass.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skylane.providers.base import Adapter

__all__ = ["PROTOCOLS", "get_adapter"]

PROTOCOLS: dict[str, str] = {
    "openai": "skylane.providers.openai",
    "anthropic": "skylane.providers.anthropic",
    "bedrock": "skylane.providers.bedrock",
    "gemini": "skylane.providers.gemini",
}

_loaded: dict[str, Adapter] = {}


def get_adapter(protocol: str) -> Adapter:
    adapter = _loaded.get(protocol)
    if adapter is None:
        module = importlib.import_module(PROTOCOLS[protocol])
        adapter = module.ADAPTER
        _loaded[protocol] = adapter
    return adapter
