"""AWS, once: the boto3 client factory and the way blocking boto3 calls leave the event loop.

    aws_client(service, settings, endpoint=..., config=...)   one client per configuration, per process
    run_blocking(fn, *args, **kwargs)                          the call on a worker thread (bounded per loop)

Both DynamoDB (accounts/) and Bedrock (transport/bedrock.py) go through these. Credentials come from
boto3's chain (the function's role on Lambda) unless the environment names an access key explicitly.
A cancelled `run_blocking` (the client left, a timeout) does not wait for the thread: a blocked read
must not hold the request.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from skylane.core.settings import Settings

__all__ = ["THREADS", "aws_client", "run_blocking"]

THREADS = 64  # concurrent boto3 calls (and open Bedrock streams) per event loop

_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def aws_client(service: str, settings: Settings, *, endpoint: str | None, config: dict[str, Any],
               default_region: str | None = "us-east-1", create: bool = True) -> Any:
    """The process's boto3 client of `service` for this configuration, created on first use (thread-safe;
    creating one takes tens of milliseconds: from the event loop, ask with `create=False` first and
    create it with `run_blocking`). Plain environment lookups only."""
    env = settings.env
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or (default_region if endpoint is None
                                                                          else "us-east-1")
    key_id = env.get("AWS_ACCESS_KEY_ID") if env.get("AWS_SECRET_ACCESS_KEY") else None
    cache_key = (service, region, endpoint, key_id, env.get("AWS_SESSION_TOKEN"), repr(sorted(config.items())))
    client = _clients.get(cache_key)
    if client is not None or not create:
        return client
    with _lock:
        client = _clients.get(cache_key)
        if client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") if key_id else None,
                aws_session_token=(env.get("AWS_SESSION_TOKEN") or None) if key_id else None,
                region_name=region,
            )
            make: Any = session.client  # typed per service by boto3-stubs; the service is a parameter here
            client = make(service, endpoint_url=endpoint or None, config=Config(**config))
            _clients[cache_key] = client
    return client


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(THREADS)
    return limiter


async def run_blocking[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking (boto3) call on a worker thread of this event loop's bounded pool."""
    call = partial(fn, *args, **kwargs) if kwargs else partial(fn, *args)
    return await anyio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=_limiter())
