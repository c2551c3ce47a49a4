"""Response objects the pipeline hands back: compact JSON bodies, request ids."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skylane.core.ids import hex_id
from skylane.transport.sse import encode_json

__all__ = ["JSONBytes", "request_id"]


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def request_id(request: Request) -> str:
    """The caller's X-Request-Id when it is sane, else a new one; the same for the whole request."""
    rid: str | None = getattr(request.state, "rid", None)
    if rid is None:
        sent = request.headers.get("x-request-id", "")
        rid = sent if 0 < len(sent) <= 128 and sent.isprintable() else "req_" + hex_id()
        request.state.rid = rid
    return rid
