"""The contract the pipeline drives and every dialect implements (chat completions, Anthropic
messages, OpenAI responses, embeddings): one API that clients speak.

A dialect knows its wire format and nothing else:

    parse(body, settings)          -> ChatRequest          (wire request -> the internal request; 400s)
    answer(resp, call)             -> dict                 (internal answer -> its response body)
    stream(call)                   -> StreamRenderer       (internal chunks -> its stream framing)
    error_body(err) / error_status(err)                    (its error envelope and statuses)

The pipeline (`skylane.pipeline.flow`) owns everything else: auth, limits, attempts, settlement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from skylane.core.errors import SkylaneError

if TYPE_CHECKING:
    from skylane.core.request import ChatRequest
    from skylane.core.settings import Settings
    from skylane.pipeline.call import Call

__all__ = ["CallView", "Dialect", "StreamRenderer"]


class CallView:
    """What a renderer may know of the call: the model name the client sent, the parsed request."""

    __slots__ = ("model", "req")

    def __init__(self, model: str, req: ChatRequest) -> None:
        self.model = model
        self.req = req


class StreamRenderer(ABC):
    """Renders the internal stream (OpenAI-shaped chunk dicts) as this dialect's stream bytes."""

    # the whole answer in this dialect's shape once `end` ran (for `Dialect.keep`), when it has one
    final: dict[str, Any] | None = None

    @abstractmethod
    def chunk(self, c: dict[str, Any]) -> bytes:
        """The bytes for one internal chunk (b"" when it yields nothing on this wire)."""

    @abstractmethod
    def end(self, usage: dict[str, Any] | None) -> bytes:
        """The closing bytes after the last chunk, with the call's final usage (cost included)."""

    @abstractmethod
    def error(self, err: SkylaneError) -> bytes:
        """The bytes for a failure mid-stream (the stream ends after them)."""


class Dialect(ABC):
    name: str = ""
    # what its calls do (skylane.pipeline.operations): "chat" (adapters' build_request/parse_response)
    # or "embeddings" (adapters' embed); the model's catalog kind must fit it
    operation: str = "chat"

    @abstractmethod
    def parse(self, body: bytes, settings: Settings) -> ChatRequest: ...

    @abstractmethod
    def answer(self, resp: dict[str, Any], view: CallView) -> dict[str, Any]: ...

    @abstractmethod
    def stream(self, view: CallView) -> StreamRenderer: ...

    @abstractmethod
    def error_body(self, err: SkylaneError) -> dict[str, Any]: ...

    def native_answer(self, data: dict[str, Any], view: CallView) -> dict[str, Any]:
        """A provider's own answer in this dialect (native passthrough): the client's model name on it."""
        if "model" in data:
            data["model"] = view.model
        return data

    def error_status(self, err: SkylaneError) -> int:
        return err.status

    # ---- optional hooks: state a dialect keeps between calls (e.g. stored responses) ------------

    async def prepare(self, call: Call, native: bool) -> None:  # noqa: B027 - an optional hook
        """After authentication and the allow-list, before the first attempt (`call.req`, `call.principal`
        are set; `native`: the first target serves this dialect natively). May raise a SkylaneError."""

    async def keep(self, call: Call, body: dict[str, Any] | None) -> None:  # noqa: B027 - an optional hook
        """After a successful answer, with the body the client gets in this dialect's shape (native or
        rendered; for streams the renderer's or the native relay's `final`), before the client has it all."""
