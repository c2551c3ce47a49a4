"""Token counting (Anthropic's POST /v1/messages/count_tokens): authenticated, never billed.

body within the cap -> parse -> authenticate -> target -> allow-list -> the provider's own count
(native: Anthropic's count_tokens endpoint) or the gateway's estimate (`skylane.core.tokens`,
marked with the `x-skylane-estimated: true` header). A count is not a model call: it reserves no
RPM/TPM, debits no credits, writes no ledger row and no request log line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from skylane.core.errors import SkylaneError, UpstreamError, UpstreamTimeout
from skylane.core.request import ChatRequest
from skylane.core.settings import Settings
from skylane.core.tokens import estimate_prompt_tokens
from skylane.pipeline.call import Call
from skylane.pipeline.contract import Dialect
from skylane.pipeline.flow import error_response, read_body
from skylane.pipeline.operations import targets_for
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState
from skylane.providers import get_adapter
from skylane.transport.errors import TransportError
from skylane.transport.http import get_client

__all__ = ["count_tokens"]

Parse = Callable[[bytes, Settings], ChatRequest]


async def count_tokens(request: Request, dialect: Dialect, parse: Parse) -> Response:
    state: AppState = request.app.state.skylane
    call = Call(state, request, request_id(request), dialect)
    try:
        return await _count(call, parse)
    except SkylaneError as exc:
        return error_response(dialect, exc, call.rid)


async def _count(call: Call, parse: Parse) -> Response:
    state = call.state
    settings = state.settings
    req = call.req = parse(await read_body(call.request, settings.max_body_bytes), settings)
    assert req.model is not None
    principal = call.principal = await state.gate.auth.authenticate(call.request.headers)
    targets = targets_for(call.dialect.operation, call.router.targets(req.model, req.models))
    state.gate.auth.check_model(principal, targets[0].model.id)
    target = next((t for t in targets if state.gate.auth.may_use(principal, t.model.id)), targets[0])
    adapter = get_adapter(target.provider.protocol)
    native = adapter.native_for(call.dialect.name, target)
    ureq = adapter.build_count_native(call.dialect.name, req, target, call.context(target, True)) if native else None
    headers = {"x-request-id": call.rid}
    if ureq is None:
        return JSONBytes({"input_tokens": estimate_prompt_tokens(req)},
                         headers={**headers, "x-skylane-estimated": "true"})
    provider = target.provider.name
    try:
        async with asyncio.timeout(settings.first_token_timeout):
            resp = await get_client(settings).post(ureq.url, content=json.dumps(ureq.body).encode(),
                                                   headers=ureq.headers)
    except TimeoutError:
        raise UpstreamTimeout(f"Provider '{provider}' did not answer in time.", provider=provider) from None
    except (TransportError, OSError):
        raise UpstreamError(f"The connection to provider '{provider}' failed.", provider=provider) from None
    if resp.status_code >= 400:
        raise adapter.map_error(resp.status_code, resp.content, resp.headers, provider)
    try:
        data = resp.json()
    except ValueError:
        raise UpstreamError(f"Provider '{provider}' answered with a body that is not JSON.",
                            provider=provider) from None
    return JSONBytes(data, headers=headers)
