"""Media bytes: an image or video decoded from a data URL or fetched by the guarded fetcher."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Media"]


@dataclass(slots=True)
class Media:
    data: bytes
    mime_type: str
