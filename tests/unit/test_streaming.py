"""SSE decoding and encoding (framing is parsed once, for every adapter)."""

from __future__ import annotations

import asyncio
import json

import pytest

from skylane.transport.sse import SSEEvent, decode_sse, encode_event


async def _pieces(*parts: bytes):
    for p in parts:
        yield p


def decode(*parts: bytes) -> list[SSEEvent]:
    async def run() -> list[SSEEvent]:
        return [e async for e in decode_sse(_pieces(*parts))]

    return asyncio.run(run())


def test_basic_events_and_done():
    evs = decode(b'data: {"a": 1}\n\ndata: [DONE]\n\n')
    assert [(e.event, e.data) for e in evs] == [("message", '{"a": 1}'), ("message", "[DONE]")]


def test_named_events_comments_and_multiline_data():
    evs = decode(b": ping comment\nevent: message_start\ndata: {\"x\":\ndata: 1}\nid: 7\nretry: 10\n\n")
    assert len(evs) == 1
    assert evs[0].event == "message_start"
    assert evs[0].data == '{"x":\n1}'
    assert evs[0].json() == {"x": 1}


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
def test_line_endings(sep):
    raw = b"event: a" + sep + b"data: 1" + sep + sep + b"data: 2" + sep + sep
    assert [(e.event, e.data) for e in decode(raw)] == [("a", "1"), ("message", "2")]


def test_split_anywhere_including_crlf_and_utf8():
    raw = 'data: {"t": "héllo 🤖"}\r\n\r\nevent: x\r\ndata: 2\r\n\r\n'.encode()
    for cut in range(1, len(raw)):
        evs = decode(raw[:cut], raw[cut:])
        assert [(e.event, e.data) for e in evs] == [("message", '{"t": "héllo 🤖"}'), ("x", "2")], cut
    # one byte at a time
    evs = decode(*[raw[i:i + 1] for i in range(len(raw))])
    assert len(evs) == 2


def test_final_event_without_blank_line():
    assert [e.data for e in decode(b"data: 1\n\ndata: last")] == ["1", "last"]


def test_no_space_after_colon_and_empty_data_lines_ignored():
    evs = decode(b"data:x\n\n\n\ndata:\n\n")
    assert [e.data for e in evs] == ["x", ""]


def test_encode_event_compact_utf8_and_surrogates():
    assert encode_event({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    out = encode_event({"a": "\ud800"})
    assert json.loads(out[6:]) == {"a": "\ud800"}
