"""The Anthropic Messages dialect: POST /v1/messages (and /v1/messages/count_tokens).

To an Anthropic model (and Claude on Bedrock) the body goes through natively (`req.wire`, see
providers/anthropic_native.py); to any other model it is translated (anthropic_parse.py) and the
internal answer / stream rendered back (anthropic_render.py). Errors use Anthropic's envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skylane.core.errors import SkylaneError
from skylane.core.request import ChatRequest
from skylane.core.settings import Settings
from skylane.dialects.base import CallView, Dialect, StreamRenderer

if TYPE_CHECKING:
    from skylane.pipeline.call import Call

__all__ = ["MESSAGES", "MessagesDialect"]


class MessagesDialect(Dialect):
    """The request and rendering modules are imported on first use, not at start-up (cold start)."""

    name = "anthropic"

    def parse(self, body: bytes, settings: Settings) -> ChatRequest:
        from skylane.dialects import anthropic_parse as _parse

        return _parse.parse_messages(body, settings.default_model)

    def parse_count(self, body: bytes, settings: Settings) -> ChatRequest:
        """A count_tokens body (a Messages body without max_tokens)."""
        from skylane.dialects import anthropic_parse as _parse

        return _parse.parse_messages(body, settings.default_model, count_only=True)

    async def prepare(self, call: Call, native: bool) -> None:
        """`thinking` is the client's preference (Claude Code always asks): for a translated target
        whose catalog row does not reason, it is dropped rather than refused."""
        req = call.req
        if native or req is None or req.reasoning_effort is None or req.model is None:
            return
        try:
            reasons = call.state.catalog.lookup(req.model).reasoning is not None
        except SkylaneError:
            return
        if not reasons:
            req.reasoning_effort = None
            req.raw.pop("reasoning_effort", None)

    def answer(self, resp: dict[str, Any], view: CallView) -> dict[str, Any]:
        from skylane.dialects import anthropic_render as _render

        return _render.render_message(resp, view)

    def stream(self, view: CallView) -> StreamRenderer:
        from skylane.dialects import anthropic_render as _render

        return _render.MessagesStream(view)

    def error_body(self, err: SkylaneError) -> dict[str, Any]:
        from skylane.dialects import anthropic_render as _render

        return _render.error_body(err)

    def error_status(self, err: SkylaneError) -> int:
        from skylane.dialects import anthropic_render as _render

        return _render.error_status(err)


MESSAGES = MessagesDialect()
