"""What bench/run.py and bench/parts.py share: paths, the cases, the request bodies, the targets."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import Proc

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
RUN_DIR = RESULTS / "run.tmp"
PEERS = BENCH / ".peers"
PY = str(ROOT / ".venv" / "bin" / "python")
HOST = "127.0.0.1"
CHUNKS = 200
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    stream: bool
    protocol: str  # the upstream's wire format


CASES = [
    Case("openai", "OpenAI passthrough, non-streaming", False, "openai"),
    Case("openai_stream", f"OpenAI passthrough, streaming {CHUNKS} chunks", True, "openai"),
    Case("anthropic", "Anthropic translation, non-streaming", False, "anthropic"),
    Case("anthropic_stream", f"Anthropic translation, streaming {CHUNKS} chunks", True, "anthropic"),
]


@dataclass
class Endpoint:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    native: bool = False  # the answer is in the upstream's own format (the upstream row)

    def body_bytes(self) -> bytes:
        return json.dumps(self.body).encode()


def chat_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Say hello"}],
        "max_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def anthropic_native_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ANTHROPIC_MODEL, "max_tokens": 256, "temperature": 0.2,
                            "system": "You are a helpful assistant.",
                            "messages": [{"role": "user", "content": "Say hello"}]}
    if stream:
        body["stream"] = True
    return body


@dataclass
class Target:
    name: str
    label: str
    version: str = ""
    port: int = 0
    proc: Proc | None = None
    skip: str | None = None  # why the whole target is skipped
    case_skip: dict[str, str] = field(default_factory=dict)
    endpoint: Callable[[Case], Endpoint] | None = None
