"""The OpenAI Responses API dialect: POST /v1/responses (Codex CLI, the OpenAI Agents SDK).

Parsing and rendering live in responses_parse / responses_render; this module is the dialect and
its state between calls (stored responses, `accounts.responses`):

- prepare (after auth): `previous_response_id` is always resolved here, from the caller's own
  stored responses (404 as if absent for another key's): its input and output are prepended to
  this request's input, for bridged and native targets alike (native targets get the expanded
  input with `store: false`, so the provider keeps nothing and the gateway's copy is the one).
  Bridged targets refuse what they cannot run (built-in tools other than web_search, which is
  dropped, and item types without a chat equivalent) with a 400 naming it.
- keep (after the answer): with `store` true or absent, the Response and its input are stored
  under the caller's key id. When the table cannot be reached: with auth enabled an explicit
  `store: true` is a 400 (store_unavailable); otherwise (auth disabled, or `store` absent) nothing is
  stored and the Response says `store: false`; a `previous_response_id` is then a 404.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from skylane.core.errors import InvalidRequest, NotFound, SkylaneError, envelope
from skylane.core.request import ChatRequest, parse_request
from skylane.core.settings import Settings
from skylane.pipeline.contract import CallView, Dialect, StreamRenderer

if TYPE_CHECKING:
    from skylane.pipeline.call import Call

__all__ = ["RESPONSES", "ResponsesDialect", "StoreUnavailable", "input_items"]


class PreviousResponseNotFound(NotFound):
    code = "previous_response_not_found"


class StoreUnavailable(SkylaneError):
    status = 400
    type = "invalid_request_error"
    code = "store_unavailable"


def input_items(wire: dict[str, Any]) -> list[dict[str, Any]]:
    """A request's `input` as a list of items (a string is one user message)."""
    items = wire.get("input")
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": items}]}]
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _native_history(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items fit to send to OpenAI with store: false: reasoning only with OpenAI's own encrypted content."""
    out = []
    for item in items:
        if item.get("type") == "reasoning":
            enc = item.get("encrypted_content")
            if not isinstance(enc, str) or enc.startswith("skylane."):
                continue
        out.append(item)
    return out


class ResponsesDialect(Dialect):
    """The request and rendering modules are imported on first use, not at start-up (cold start)."""

    name = "responses"

    def parse(self, body: bytes, settings: Settings) -> ChatRequest:
        from skylane.dialects.responses_parse import load_body, parse

        return parse(load_body(body), settings.default_model)

    def answer(self, resp: dict[str, Any], view: CallView) -> dict[str, Any]:
        from skylane.dialects.responses_render import new_id, output_items, response_object, status_of

        choices = resp.get("choices") or [{}]
        choice = choices[0]
        status, incomplete = status_of(choice.get("finish_reason"))
        items = output_items(choice.get("message") or {}, "incomplete" if status == "incomplete" else "completed")
        return response_object(view, new_id("resp"), int(resp.get("created") or time.time()), status, items,
                               resp.get("usage"), incomplete=incomplete)

    def stream(self, view: CallView) -> StreamRenderer:
        from skylane.dialects.responses_render import ResponsesStream

        return ResponsesStream(view)

    def error_body(self, err: SkylaneError) -> dict[str, Any]:
        return envelope(err)

    def native_answer(self, data: dict[str, Any], view: CallView) -> dict[str, Any]:
        data["model"] = view.model
        wire = view.req.wire
        data["store"] = wire.get("store", True)
        data["previous_response_id"] = wire.get("previous_response_id")
        return data

    # ---- state between calls --------------------------------------------------------------------
    async def prepare(self, call: Call, native: bool) -> None:
        from skylane.dialects.responses_parse import to_chat

        req = call.req
        assert req is not None
        wire = req.wire
        store = call.state.responses
        owner = store.owner(call.principal.key_id if call.principal else None)
        wants_store = wire.get("store") is not False
        prev = wire.get("previous_response_id")
        if (wants_store or prev) and not await store.available():
            if prev:  # nothing can have been stored: as if it did not exist
                raise PreviousResponseNotFound(
                    f"Previous response with id '{str(prev)[:80]}' not found (stored responses are unavailable: "
                    f"the gateway cannot reach its table '{store.table}', SKYLANE_RESPONSES_TABLE).",
                    param="previous_response_id")
            if wire.get("store") is True and call.state.settings.auth_enabled:
                raise StoreUnavailable(
                    f"Stored responses are unavailable: the gateway cannot reach its table '{store.table}' "
                    "(SKYLANE_RESPONSES_TABLE). Send store: false and the whole conversation as input.",
                    param="store")
            wire["store"] = False  # auth disabled, or store absent: answered, not stored (and said so)
            wants_store = False
        if prev:
            record = await store.get(owner, prev) if isinstance(prev, str) else None
            if record is None:
                raise PreviousResponseNotFound(f"Previous response with id '{str(prev)[:80]}' not found.",
                                               param="previous_response_id")
            history = list(record.get("input") or []) + list((record.get("response") or {}).get("output") or [])
            wire["input"] = (_native_history(history) if native else history) + input_items(wire)
            chat, _ = to_chat(wire)
            fresh = parse_request(chat)
            req.messages = fresh.messages
            req._raw = fresh._raw
        if not native:
            _, problems = to_chat(wire)
            if problems:
                raise InvalidRequest(
                    f"The {problems[0]} is not supported for model '{req.model}': only OpenAI models served natively "
                    "run it (the request is bridged to another provider).", param="tools" if "tool" in problems[0]
                    else "input", code="unsupported_for_model")
        if wants_store and store.worth_checking(wire.get("input")):
            store.encode({"input": wire.get("input")})  # ResponseTooLarge (400) before the call, not after

    async def keep(self, call: Call, body: dict[str, Any] | None) -> None:
        req = call.req
        if body is None or req is None or req.wire.get("store") is False or not isinstance(body.get("id"), str):
            return
        store = call.state.responses
        owner = store.owner(call.principal.key_id if call.principal else None)
        record = {"response": body, "input": input_items(req.wire)}
        await store.put(owner, body["id"], record)


RESPONSES = ResponsesDialect()
