"""Random ids for requests, answers and tool calls.

These ids name things; they grant nothing (what a key may reach is checked by key, and the ids that
do act as handles — stored responses, API keys — come from `secrets`). So they come from a per-process
generator seeded from the OS at start, not a system call each.
"""

from __future__ import annotations

import random

__all__ = ["hex_id"]

_random = random.Random()  # seeded from os.urandom


def hex_id(chars: int = 32) -> str:
    """`chars` random lowercase hex digits."""
    return f"{_random.getrandbits(chars * 4):0{chars}x}"
