"""A fake Gemini API (v1beta generateContent / streamGenerateContent) speaking Google's wire format.

Routes: POST /v1beta/models/{model}:generateContent and :streamGenerateContent (alt=sse → one
whole GenerateContentResponse per `data:` event, CRLF framed, no [DONE]). The key must come in
`x-goog-api-key`: none → 403 PERMISSION_DENIED, a wrong one → 400 INVALID_ARGUMENT with an
ErrorInfo API_KEY_INVALID detail (what Google really answers).

Behaviour follows the shared fake conventions, chosen by the last content:
  functionResponse parts → "Tool said: <response.content or the response JSON>"
  an inlineData / fileData part → "I see an image (<mime>, <N> bytes)" (or the file URI)
  "tools2" / "tool"      → two / one functionCall parts (no ids), finishReason STOP
  "json"                 → the text {"answer": 42}
  "error:<status>[:<s>]" → that status with a google.rpc error body (429: RetryInfo "<s>s", default 1)
  "midstream"            → (stream) one text event, then an error event
  "length"               → finishReason MAX_TOKENS
  "safety"               → a candidate with finishReason SAFETY and no content
  "blocked"              → promptFeedback.blockReason SAFETY and no candidates
  "malformed"            → finishReason MALFORMED_FUNCTION_CALL
  "thoughts"             → a thought part before the answer
  otherwise              → "Hello from fake-gemini: <text>"
candidateCount n → n candidates. usageMetadata (with cached and thoughts tokens) on every event.
Thinking (generationConfig.thinkingConfig, or any gemini-3 model): a functionCall answer's first call
carries a `thoughtSignature` (after a thought text part when includeThoughts is set). On gemini-3
models a replayed functionCall of the current turn without its signature (or with a foreign one) is
refused with Google's 400 text, unless it carries the documented `skip_thought_signature_validator`.
Every request is recorded in `FakeGemini.requests` (path, query, body, headers).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.embeddings import gemini_batch_embed

MODEL_VERSION = "gemini-2.5-flash"
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def google_error(code: int, message: str, status: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}
    if details is not None:
        err["details"] = details
    return {"error": err}


THOUGHT_TEXT = "The weather tool answers this."
SKIP = "skip_thought_signature_validator"
_MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required for tools "
                      "to work correctly, and missing thought_signature may lead to degraded model performance. "
                      "Additional data, function call `default_api:{name}` , position {pos}. Please refer to "
                      "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")


def thought_signature(name: str) -> str:
    return base64.b64encode(hashlib.sha256(b"fake-gemini:" + name.encode()).digest() * 2).decode()


def _thinks(model: str, body: dict[str, Any]) -> bool:
    return model.startswith("gemini-3") or "thinkingConfig" in (body.get("generationConfig") or {})


def signature_error(model: str, body: dict[str, Any]) -> str | None:
    """Gemini 3's rule: in the current turn (since the last user text), each model step's first
    functionCall carries the signature it came with."""
    if not model.startswith("gemini-3"):
        return None
    contents = body.get("contents") or []
    start = max((i for i, c in enumerate(contents) if c.get("role") == "user" and _user_text(c)), default=0)
    for pos, content in enumerate(contents[start:], start + 1):
        calls = [p for p in content.get("parts", []) if "functionCall" in p] if content.get("role") == "model" else []
        if calls:
            sig = calls[0].get("thoughtSignature")
            if sig not in (SKIP, thought_signature(calls[0]["functionCall"]["name"])):
                return _MISSING_SIGNATURE.format(name=calls[0]["functionCall"]["name"], pos=pos)
    return None


def _user_text(content: dict[str, Any]) -> str:
    return " ".join(p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str))


class FakeGemini:
    def __init__(self, key: str = "gemini-upstream-test") -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1beta/models/{target:path}", self.generate, methods=["POST"])])

    async def generate(self, request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.partition(":")
        body = await request.json()
        self.requests.append({"path": request.url.path, "query": dict(request.query_params), "model": model,
                              "method": method, "body": body, "headers": dict(request.headers)})
        key = request.headers.get("x-goog-api-key")
        if not key:
            return JSONResponse(google_error(
                403, "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API."), 403)
        if key != self.key:
            return JSONResponse(google_error(400, "API key not valid. Please pass a valid API key.", details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]), 400)
        if method == "batchEmbedContents":  # embeddings: tests/fakes/embeddings.py
            status, payload = gemini_batch_embed(model, body)
            return JSONResponse(payload, status)
        if method not in ("generateContent", "streamGenerateContent"):
            return JSONResponse(google_error(404, f"Method not found: {method}"), 404)
        stream = method == "streamGenerateContent"
        if stream and request.query_params.get("alt") != "sse":
            return JSONResponse(google_error(400, "this fake only streams with alt=sse"), 400)
        contents = body.get("contents") or []
        if not contents:
            return JSONResponse(google_error(400, "* GenerateContentRequest.contents: contents is not specified"),
                                400)
        refused = signature_error(model, body)
        if refused is not None:
            return JSONResponse(google_error(400, refused), 400)
        last = contents[-1]
        text = _user_text(last)
        if text.startswith("error:"):
            return self._error(text)
        n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
        usage = self._usage(body)
        if text.startswith("blocked"):
            resp = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
                "usageMetadata": {k: v for k, v in usage.items() if k.startswith(("prompt", "total"))},
                "modelVersion": MODEL_VERSION, "responseId": "fakeResp0"}
            if stream:
                return StreamingResponse(self._events([resp]), media_type="text/event-stream")
            return JSONResponse(resp)
        parts, finish = self._answer(body, last, text)
        if parts and "functionCall" in parts[0] and _thinks(model, body):
            parts[0] = {**parts[0], "thoughtSignature": thought_signature(parts[0]["functionCall"]["name"])}
            if ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts"):
                parts.insert(0, {"text": THOUGHT_TEXT, "thought": True})
        if stream:
            return StreamingResponse(self._events(self._stream_responses(parts, finish, usage, n, text)),
                                     media_type="text/event-stream")
        candidates = [self._candidate(parts, finish, i) for i in range(n)]
        return JSONResponse({"candidates": candidates, "usageMetadata": usage, "modelVersion": MODEL_VERSION,
                             "responseId": "fakeResp0"})

    def _error(self, text: str) -> Response:
        bits = text.split(":")
        status = int(bits[1])
        if status == 429:
            delay = bits[2] if len(bits) > 2 and bits[2] else "1"
            return JSONResponse(google_error(429, "You exceeded your current quota, please check your plan and "
                                             "billing details.", details=[
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaValue": "10"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                    {"description": "Learn more about Gemini API quotas",
                     "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}]), 429)
        messages = {400: "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.",
                    403: "The caller does not have permission", 503: "The model is overloaded. Please try again later.",
                    500: "An internal error has occurred. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting"}
        return JSONResponse(google_error(status, messages.get(status, f"fake failure {status}")), status)

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = max(8, len(json.dumps(body.get("contents"))) // 4)
        cached = 4
        return {"promptTokenCount": prompt, "candidatesTokenCount": 7, "totalTokenCount": prompt + 7 + 5,
                "cachedContentTokenCount": cached, "thoughtsTokenCount": 5,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": cached}]}

    def _answer(self, body: dict[str, Any], last: dict[str, Any], text: str) -> tuple[list[dict[str, Any]], str]:
        parts = last.get("parts", [])
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if responses:
            resp = responses[-1].get("response") or {}
            result = resp["content"] if set(resp) == {"content"} else json.dumps(resp)
            return [{"text": f"Tool said: {result}"}], "STOP"
        for p in parts:
            if "inlineData" in p:
                d = p["inlineData"]
                return [{"text": f"I see an image ({d['mimeType']}, {len(base64.b64decode(d['data']))} bytes)"}], \
                    "STOP"
            if "fileData" in p:
                d = p["fileData"]
                return [{"text": f"I see an image ({d.get('mimeType', 'unknown')}, {d['fileUri']})"}], "STOP"
        decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
        if text.startswith("tool") and decls:
            count = 2 if text.startswith("tools2") else 1
            calls = [{"functionCall": {"name": decls[min(i, len(decls) - 1)]["name"], "args": {"city": f"Paris{i}"}}}
                     for i in range(count)]
            return calls, "STOP"
        if text.startswith("json"):
            return [{"text": json.dumps({"answer": 42})}], "STOP"
        if text.startswith("length"):
            return [{"text": "Truncated answer"}], "MAX_TOKENS"
        if text.startswith("safety"):
            return [], "SAFETY"
        if text.startswith("malformed"):
            return [], "MALFORMED_FUNCTION_CALL"
        answer = [{"text": f"Hello from fake-gemini: {text}"}]
        if text.startswith("thoughts"):
            answer.insert(0, {"text": "Let me think about this secretly.", "thought": True})
        return answer, "STOP"

    @staticmethod
    def _candidate(parts: list[dict[str, Any]], finish: str | None, index: int) -> dict[str, Any]:
        cand: dict[str, Any] = {}
        if parts:
            cand["content"] = {"parts": parts, "role": "model"}
        if finish:
            cand["finishReason"] = finish
            if finish == "SAFETY":
                cand["safetyRatings"] = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH",
                                          "blocked": True}]
        cand["index"] = index
        return cand

    def _stream_responses(self, parts: list[dict[str, Any]], finish: str, usage: dict[str, Any], n: int,
                          text: str) -> list[dict[str, Any]]:
        """Text split into word events; function calls whole; the last event carries finishReason."""
        pieces: list[list[dict[str, Any]]] = []
        for part in parts:
            if "text" in part and not part.get("thought"):
                words = part["text"].split(" ")
                pieces.extend([{"text": w if i == 0 else " " + w}] for i, w in enumerate(words))
            else:
                pieces.append([part])
        if text.startswith("midstream"):
            pieces = pieces[:1]
        events = []
        partial = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"],
                   "cachedContentTokenCount": usage["cachedContentTokenCount"],
                   "promptTokensDetails": usage["promptTokensDetails"]}
        for i, piece in enumerate(pieces or [[]]):
            final = i == len(pieces or [[]]) - 1 and not text.startswith("midstream")
            events.append({
                "candidates": [self._candidate(piece, finish if final else None, c) for c in range(n)],
                "usageMetadata": usage if final else partial,
                "modelVersion": MODEL_VERSION, "responseId": "fakeResp0"})
        if text.startswith("midstream"):
            events.append(google_error(500, "An internal error has occurred. Please retry or report in "
                                       "https://developers.generativeai.google/guide/troubleshooting"))
        return events

    @staticmethod
    async def _events(responses: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        for resp in responses:
            yield b"data: " + json.dumps(resp, separators=(",", ":")).encode() + b"\r\n\r\n"
