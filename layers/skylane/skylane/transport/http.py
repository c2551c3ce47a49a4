"""The HTTP transport: one shared httpx.AsyncClient per event loop, so connections are reused."""

from __future__ import annotations

import asyncio
import weakref

import httpx

from skylane.core.settings import Settings

__all__ = ["aclose_client", "get_client"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def get_client(settings: Settings) -> httpx.AsyncClient:
    """One AsyncClient per process (per event loop), so connections are reused."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                # reads are bounded by the first-token and idle timeouts below; this is a backstop
                read=max(settings.first_token_timeout, settings.idle_timeout) + 1.0,
                write=settings.connect_timeout + 30,
                pool=settings.connect_timeout,
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30),
            follow_redirects=False,
            trust_env=False,
        )
        _clients[loop] = client
    return client


async def aclose_client() -> None:
    """Close this event loop's client (app shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
