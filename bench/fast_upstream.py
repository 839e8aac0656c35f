"""A fast fake upstream for the proxy benches: canned answers, no JSON parsing.

The simulator (aiohttp, full JSON parse, scripted conversations) spends more CPU per megabyte
request than the proxies it is compared with; on a 2-core machine that CPU is shared with them.
This server reads the request (head + content-length body), looks for ``"stream":true`` in the
bytes and answers a fixed Messages JSON body or SSE stream with usage, so the proxy meters it. A
request to an OpenAI path (``/responses``, ``/chat/completions``) gets a fixed JSON Response or Chat
Completion with usage (never a stream: the OpenAI rows send ``"stream": false``).

    python bench/fast_upstream.py PORT [HOLD_S]

With HOLD_S, a stream pauses that long after its first event (streams held open for memory rows).
"""

from __future__ import annotations

import asyncio
import json
import sys

USAGE = {"input_tokens": 1200, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
MESSAGE = {"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": USAGE}
JSON_BODY = json.dumps(MESSAGE).encode()
EVENTS = [
    ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                                            "usage": {**USAGE, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 12}}),
    ("message_stop", {"type": "message_stop"}),
]
RESPONSE = {"id": "resp_bench", "object": "response", "status": "completed", "model": "gpt-5-codex",
            "output": [{"type": "message", "id": "msg_bench", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
            "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1212}}
COMPLETION = {"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4.1",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1200, "completion_tokens": 12, "total_tokens": 1212,
                        "prompt_tokens_details": {"cached_tokens": 0}}}
SSE = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in EVENTS]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body


JSON_ANSWER = _json_answer(JSON_BODY)
# by the request line's path: OpenAI's endpoints answer their own JSON
OPENAI_ANSWERS = {b"/responses ": _json_answer(json.dumps(RESPONSE).encode()),
                  b"/chat/completions ": _json_answer(json.dumps(COMPLETION).encode())}
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
# the first event with the head (as providers do), the rest right after
STREAM_FIRST = STREAM_HEAD + _chunk(SSE[0])
STREAM_REST = b"".join(_chunk(e) for e in SSE[1:]) + b"0\r\n\r\n"


HOLD_S = 0.0


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = bytearray()
        self.need: int | None = None  # bytes of the whole request, once the head is in
        self.head_end = 0
        self.answer: bytes | None = None  # the canned OpenAI answer of the request being read

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                i = head.find(b"content-length:")
                length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
                self.head_end, self.need = end + 4, end + 4 + length
                line = head[:head.find(b"\r\n")]
                self.answer = next((a for path, a in OPENAI_ANSWERS.items() if path in line), None)
            if len(self.buf) < self.need:
                return
            body = self.buf[self.head_end:self.need]
            del self.buf[:self.need]
            self.need = None
            if self.answer is not None:
                self.transport.write(self.answer)
            elif b'"stream":true' in body or b'"stream": true' in body:
                self.transport.write(STREAM_FIRST)
                if HOLD_S:
                    asyncio.get_running_loop().call_later(HOLD_S, self._rest)
                else:
                    self.transport.write(STREAM_REST)
            else:
                self.transport.write(JSON_ANSWER)


    def _rest(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(STREAM_REST)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    HOLD_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    try:
        import uvloop
        uvloop.run(serve(int(sys.argv[1])))
    except ImportError:
        asyncio.run(serve(int(sys.argv[1])))
