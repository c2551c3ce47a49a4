"""What every call shares within one process: settings, catalog, the gate (keys and limits), breakers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skylane.accounts.factory import build_gate
from skylane.accounts.gate import Gate
from skylane.core.catalog import Catalog, load_catalog
from skylane.core.settings import Settings, get_settings
from skylane.ops.secrets import SecretEnv
from skylane.pipeline.router import Breaker

if TYPE_CHECKING:
    from skylane.accounts.responses import ResponseStore

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog
    gate: Gate
    breakers: dict[str, Breaker] = field(default_factory=dict)
    _responses: ResponseStore | None = field(default=None, repr=False)

    @property
    def responses(self) -> ResponseStore:
        """Stored Responses API responses (the Responses dialect's state; created on first use)."""
        if self._responses is None:
            from skylane.accounts.responses import ResponseStore  # lazy: only the Responses dialect keeps state

            self._responses = ResponseStore(self.settings)
        return self._responses

    @classmethod
    def build(cls, settings: Settings | None = None) -> AppState:
        settings = settings or get_settings()
        return cls(settings=settings, catalog=load_catalog(settings, SecretEnv(settings)), gate=build_gate(settings))
