"""Inline images and documents in a request: what they cost in tokens, for the input estimate.

A base64 payload is billed by what it depicts, not by its bytes: a 0.9 MB screenshot is ~1,600
tokens, not the ~300,000 that bytes/4 gives. So the estimator takes these payloads out of the byte
count and adds a per-item figure instead:

* an image costs a fixed :data:`IMAGE_TOKENS` (what Anthropic bills for an image at its 1.15 MP
  working size, to which larger ones are downscaled first);
* a document (a PDF) costs ``decoded_bytes / 40`` (about 2,000 tokens per 80 kB page: text plus the
  page image), never less than :data:`DOCUMENT_MIN_TOKENS`.

Shapes recognised (wherever they are nested, e.g. inside a ``tool_result``):

* Anthropic ``{"type": "image" | "document", "source": {"type": "base64", "data": ...}}``
  (a ``text`` document source is plain text and stays in the byte count);
* Chat Completions ``{"type": "image_url", "image_url": {"url": "data:..."}}`` and
  ``{"type": "file", "file": {"file_data": "data:..."}}``;
* Responses ``{"type": "input_image", "image_url": "data:..."}`` and
  ``{"type": "input_file", "file_data": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

IMAGE_TOKENS = 1_600
DOCUMENT_BYTES_PER_TOKEN = 40
DOCUMENT_MIN_TOKENS = 1_600

# Every recognised payload leaves one of these in the request's compact JSON. Inside a JSON string
# a quote is always escaped, so '"base64"' only matches a real value. Checking the serialised text
# first keeps the structure walk off the common request, which carries no media at all.
_MARKERS = ('"base64"', ";base64,", '"file_data"', '"data:')


def may_carry_media(compact_json: str) -> bool:
    return any(marker in compact_json for marker in _MARKERS)


def media_payloads(part: Any) -> Iterator[tuple[str, int]]:
    """(payload string, its token estimate) for every inline image or document in ``part``."""
    stack = [part]
    push = stack.append
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found = _media(node) if "type" in node else None
            if found is not None:
                yield found
                continue
            node = node.values()
        # Only containers are pushed: this runs over thousands of blocks of a long conversation.
        for value in node:
            if isinstance(value, (dict, list)):  # the tuple form: faster than dict | list
                push(value)


def json_size(payload: str) -> int:
    """Bytes ``payload`` takes in compact JSON (quotes excluded), or a little less, never more.

    Base64 is ASCII whose only escapes are line breaks (MIME-wrapped payloads): counting those is
    exact for it and several times faster than re-encoding a megabyte. Anything rarer it leaves in
    the estimate, which can only err on the high side.
    """
    if not payload.isascii():
        return len(json.dumps(payload, ensure_ascii=False).encode()) - 2
    return len(payload) + payload.count("\n") + payload.count("\r")


def _media(node: dict[str, Any]) -> tuple[str, int] | None:
    kind = node.get("type")
    if not isinstance(kind, str):
        return None
    if kind in ("image", "document"):
        source = node.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":
            return _payload(source.get("data"), kind == "image")
    elif kind == "image_url":
        ref = node.get("image_url")
        return _data_url(ref.get("url") if isinstance(ref, dict) else ref)
    elif kind == "input_image":
        return _data_url(node.get("image_url"))
    elif kind == "input_file":
        return _payload(node.get("file_data"), False)
    elif kind == "file":
        ref = node.get("file")
        return _payload(ref.get("file_data") if isinstance(ref, dict) else None, False)
    return None


def _data_url(url: Any) -> tuple[str, int] | None:
    # A plain https:// image URL is a few bytes of text, already right in the byte count.
    return (url, IMAGE_TOKENS) if isinstance(url, str) and url.startswith("data:") else None


def _payload(data: Any, image: bool) -> tuple[str, int] | None:
    if not isinstance(data, str) or not data:
        return None  # nothing attached: no media to count
    return data, IMAGE_TOKENS if image else document_tokens(data)


def document_tokens(data: str) -> int:
    """Tokens of a base64 (or ``data:`` URL) document: decoded bytes / 40, at least 1,600."""
    start = data.find(",") + 1 if data.startswith("data:") else 0
    padding = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    decoded = (len(data) - start) * 3 // 4 - padding  # line breaks are not discounted: errs high
    return max(DOCUMENT_MIN_TOKENS, -(-decoded // DOCUMENT_BYTES_PER_TOKEN))
