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
from skylane.dialects.anthropic_parse import parse_messages
from skylane.dialects.anthropic_render import MessagesStream, error_body, error_status, render_message
from skylane.dialects.base import CallView, Dialect, StreamRenderer

if TYPE_CHECKING:
    from skylane.pipeline.call import Call

__all__ = ["MESSAGES", "MessagesDialect"]


class MessagesDialect(Dialect):
    name = "anthropic"

    def parse(self, body: bytes, settings: Settings) -> ChatRequest:
        return parse_messages(body, settings.default_model)

    def parse_count(self, body: bytes, settings: Settings) -> ChatRequest:
        """A count_tokens body (a Messages body without max_tokens)."""
        return parse_messages(body, settings.default_model, count_only=True)

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
        return render_message(resp, view)

    def stream(self, view: CallView) -> StreamRenderer:
        return MessagesStream(view)

    def error_body(self, err: SkylaneError) -> dict[str, Any]:
        return error_body(err)

    def error_status(self, err: SkylaneError) -> int:
        return error_status(err)


MESSAGES = MessagesDialect()
