"""Summaries of py-spy's raw (collapsed-stack) output: where a process spent its CPU samples."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["component", "summarize_raw"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("skylane (gateway code)", ("skylane/", "functions/")),
    ("uvicorn + h11 (HTTP server)", ("uvicorn/", "h11/")),
    ("starlette + fastapi", ("starlette/", "fastapi/")),
    ("httpx + httpcore (upstream client)", ("httpx/", "httpcore/", "h2/")),
    ("anyio", ("anyio/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
    ("boto3 / botocore", ("boto3/", "botocore/", "urllib3/")),
    ("asyncio + sockets + ssl", ("asyncio/", "selectors.py", "socket.py", "ssl.py", "threading.py")),
    ("typing / dataclasses / copy", ("typing.py", "dataclasses.py", "copy.py", "enum.py", "abc.py")),
]


def component(path: str) -> str:
    p = path.replace("\\", "/")
    for name, marks in COMPONENTS:
        if any(m in p for m in marks):
            return name
    return "other"


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw.strip())
        if m:
            out.append((m.group("func"), m.group("file")))
        else:
            out.append((raw.strip(), ""))
    return out


def _short(path: str) -> str:
    p = path.replace("\\", "/")
    for marker in ("site-packages/", "layers/skylane/", "/lib/python3.13/"):
        if marker in p:
            return p.split(marker, 1)[1]
    return p.rsplit("/", 2)[-1] if p.count("/") > 2 else p


def summarize_raw(path: Path, top: int = 12) -> dict[str, Any]:
    """Self time by component, the top functions by self time, and the top gateway-side
    functions by inclusive time (a function counted once per sample however deep it recurses)."""
    by_component: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames:
            continue
        total += n
        func, file = frames[-1]
        by_component[component(file)] += n
        self_fn[f"{func} ({_short(file)})"] += n
        seen = set()
        for func, file in frames:
            c = component(file)
            if c in ("asyncio + sockets + ssl", "other", "typing / dataclasses / copy") or not file:
                continue
            key = f"{func} ({_short(file)})"
            if key not in seen:
                seen.add(key)
                incl_fn[key] += n
    pct = (lambda n: 100.0 * n / total) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "components": [(name, pct(n)) for name, n in by_component.most_common()],
        "self": [(name, pct(n)) for name, n in self_fn.most_common(top)],
        "inclusive": [(name, pct(n)) for name, n in incl_fn.most_common(top * 2)],
    }
