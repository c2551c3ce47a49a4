"""What the HTTP layer asks of keys and limits, and the open gate used when auth is disabled.

    auth.authenticate(headers)           -> Principal            (401 AuthenticationFailed)
    auth.check_model(principal, model)   -> None                 (403 PermissionDenied)
    auth.may_use(principal, model)       -> bool                 (models listing)
    limits.reserve(principal, tokens)    -> Reservation          (429 RateLimited, 402 InsufficientCredits)
    limits.settle(reservation, model_id, usage, cost_micros)     after the answer, streams included
    limits.release(reservation, model_id)  the request failed before any answer (counted as an error)

`accounts.factory.build_gate(settings)` picks the DynamoDB-backed implementations (auth.py, limits.py) when
`SKYLANE_AUTH` is enabled, and the open gate otherwise (nothing checked, nothing counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "Gate",
    "Limiter",
    "OpenAuthenticator",
    "OpenLimiter",
    "Principal",
    "Reservation",
]


@dataclass(frozen=True)
class Principal:
    key_id: str | None  # None when auth is disabled
    record: Any = None  # the key record (auth.KeyRecord) when authenticated


ANONYMOUS = Principal(key_id=None)


@dataclass
class Reservation:
    principal: Principal
    tokens: int = 0  # TPM tokens reserved
    window: int = 0  # the minute window the reservation was made in
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    failed: bool = False  # ended in an error status (set by the pipeline; counted in the usage aggregates)


class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...
    def check_model(self, principal: Principal, model_id: str) -> None: ...
    def may_use(self, principal: Principal, model_id: str) -> bool: ...


class Limiter(Protocol):
    async def reserve(self, principal: Principal, tokens: int) -> Reservation: ...
    async def settle(
        self, reservation: Reservation, model_id: str, usage: dict[str, Any] | None, cost_micros: int
    ) -> None: ...
    async def release(self, reservation: Reservation, model_id: str | None = None) -> None: ...


class OpenAuthenticator:
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return ANONYMOUS

    def check_model(self, principal: Principal, model_id: str) -> None:
        return None

    def may_use(self, principal: Principal, model_id: str) -> bool:
        return True


class OpenLimiter:
    async def reserve(self, principal: Principal, tokens: int) -> Reservation:
        return Reservation(principal=principal, tokens=tokens)

    async def settle(
        self, reservation: Reservation, model_id: str, usage: dict[str, Any] | None, cost_micros: int
    ) -> None:
        reservation.settled = True

    async def release(self, reservation: Reservation, model_id: str | None = None) -> None:
        reservation.settled = True


@dataclass
class Gate:
    auth: Authenticator
    limits: Limiter
    enabled: bool
