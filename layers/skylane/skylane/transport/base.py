"""The transport contract: what an attempt sends, and a transport that is not plain HTTP (Bedrock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from skylane.core.settings import Settings

__all__ = ["Transport", "TransportContext", "UpstreamRequest"]


@dataclass
class UpstreamRequest:
    url: str  # the HTTP URL ("" for a non-HTTP transport)
    headers: dict[str, str]
    body: dict[str, Any]
    # for non-HTTP transports (Bedrock): the operation and its keyword arguments
    extra: dict[str, Any] = field(default_factory=dict)
    provider: str = ""  # the provider's name, for error messages


class TransportContext(Protocol):
    @property
    def settings(self) -> Settings | None: ...


class Transport:
    """A non-HTTP transport (Bedrock's boto3 client). Errors raised are SkylaneErrors; HTTP
    providers use the shared httpx client (skylane.transport.http) driven by pipeline/attempt.py."""

    async def complete(self, request: UpstreamRequest, ctx: TransportContext) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, request: UpstreamRequest, ctx: TransportContext) -> AsyncIterator[Any]:
        raise NotImplementedError
