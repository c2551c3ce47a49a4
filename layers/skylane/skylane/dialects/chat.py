"""The OpenAI chat completions dialect: POST /v1/chat/completions.

The internal answer already has the chat-completions shape, so rendering is stamping: the
client's model name, one id and `created` per stream, `[DONE]`, and the usage chunk when asked.
"""

from __future__ import annotations

import time
from typing import Any

from skylane.core.answer import chunk, completion_id
from skylane.core.errors import SkylaneError, envelope
from skylane.core.request import ChatRequest, parse_request
from skylane.core.settings import Settings
from skylane.dialects.base import CallView, Dialect, StreamRenderer
from skylane.transport.sse import DONE, encode_event

__all__ = ["CHAT", "ChatDialect"]


class _ChatStream(StreamRenderer):
    __slots__ = ("cid", "created", "model", "wants_usage")

    def __init__(self, view: CallView) -> None:
        self.cid = completion_id()
        self.created = int(time.time())
        self.model = view.model
        self.wants_usage = view.req.wants_usage

    def chunk(self, c: dict[str, Any]) -> bytes:
        c["id"] = self.cid
        c["object"] = "chat.completion.chunk"
        c["created"] = self.created
        c["model"] = self.model
        return encode_event(c)

    def end(self, usage: dict[str, Any] | None) -> bytes:
        if self.wants_usage and usage:
            return encode_event(chunk(self.cid, self.created, self.model, [], usage)) + DONE
        return DONE

    def error(self, err: SkylaneError) -> bytes:
        return encode_event(envelope(err))


class ChatDialect(Dialect):
    name = "chat"

    def parse(self, body: bytes, settings: Settings) -> ChatRequest:
        return parse_request(body, settings.default_model)

    def answer(self, resp: dict[str, Any], view: CallView) -> dict[str, Any]:
        resp["model"] = view.model
        if not resp.get("id"):
            resp["id"] = completion_id()
        return resp

    def stream(self, view: CallView) -> StreamRenderer:
        return _ChatStream(view)

    def error_body(self, err: SkylaneError) -> dict[str, Any]:
        return envelope(err)


CHAT = ChatDialect()
