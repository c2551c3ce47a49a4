"""Picks the gate: DynamoDB-backed keys and limits when auth is on, the open gate otherwise."""

from __future__ import annotations

from skylane.accounts.gate import Gate, OpenAuthenticator, OpenLimiter
from skylane.core.settings import Settings

__all__ = ["build_gate"]


def build_gate(settings: Settings) -> Gate:
    if not settings.auth_enabled:
        return Gate(auth=OpenAuthenticator(), limits=OpenLimiter(), enabled=False)
    from skylane.accounts.keys import DynamoAuthenticator
    from skylane.accounts.limits import DynamoLimiter

    return Gate(auth=DynamoAuthenticator(settings), limits=DynamoLimiter(settings), enabled=True)
