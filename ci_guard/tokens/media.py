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
* Chat Completions ``{"type": "image_url", "image_url": {"url": "data:...;base64,..."}}`` and
  ``{"type": "file", "file": {"file_data": "data:...;base64,..."}}``;
* Responses ``{"type": "input_image", "image_url": "data:...;base64,..."}`` and
  ``{"type": "input_file", "file_data": "data:...;base64,..."}``.

Media the proxy cannot measure -- an image or document given by URL or by file id -- costs the
provider's documented maximum for one item (issue 12 #6; the URL itself was ~30 tokens of text):

* an image: :data:`IMAGE_TOKENS` on Anthropic (images are downscaled to ~1.15 MP, ~1,600 tokens);
  :data:`OPENAI_IMAGE_MAX_TOKENS` on OpenAI (patch-based models: at most 1,536 patches times the
  largest published multiplier, 2.46);
* a document: :data:`DOCUMENT_MAX_TOKENS` (the 100-page limit of a PDF at ~2,000 tokens a page).

Those are counted in ``unmeasured``, so ``enforcement.strict`` can refuse such requests instead.

What one OpenAI image bills depends on the model (:func:`openai_image_max_tokens`): ``gpt-4o-mini``
bills images at a token multiplier that keeps their dollar price equal to ``gpt-4o``'s, up to
~48,000 tokens an image. The estimate above is model-independent (the model may still change: the
policy can rewrite it); the meter adds :func:`openai_image_extra_tokens` once the model is final.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

IMAGE_TOKENS = 1_600
DOCUMENT_BYTES_PER_TOKEN = 40
DOCUMENT_MIN_TOKENS = 1_600
OPENAI_IMAGE_MAX_TOKENS = 3_780  # 1,536 patches x 2.46 (gpt-4.1-nano / gpt-5-nano), rounded up
DOCUMENT_MAX_TOKENS = 200_000  # 100 pages (Anthropic's and OpenAI's PDF limit) x ~2,000 tokens

# OpenAI's published image costs ("Calculating costs", platform.openai.com/docs/guides/images-vision):
# tile-priced models bill base + tiles x per-tile at high detail, after the image is scaled to fit
# 2048x2048 and then its short side to 768 px: at most 2 x 4 = 8 tiles of 512 px. gpt-4o-mini's
# base is 2,833 and its tile 5,667 tokens (gpt-4o: 85 and 170; o1/o3: 75 and 150; gpt-5: 70 and 140);
# patch-priced models bill at most 1,536 patches x their multiplier (2.46 at most).
OPENAI_TILES_MAX = 8
GPT_4O_MINI_IMAGE_MAX_TOKENS = 2_833 + OPENAI_TILES_MAX * 5_667  # 48,169
# Model families whose images bill more than OPENAI_IMAGE_MAX_TOKENS (matched within the model
# name, so dated snapshots and provider prefixes match too).
_OPENAI_IMAGE_MAX_BY_FAMILY = (("gpt-4o-mini", GPT_4O_MINI_IMAGE_MAX_TOKENS),)


def openai_image_max_tokens(model: str | None) -> int:
    """The most one image can bill on OpenAI ``model`` (any size, any detail)."""
    name = (model or "").lower()
    for family, tokens in _OPENAI_IMAGE_MAX_BY_FAMILY:
        if family in name:
            return tokens
    return OPENAI_IMAGE_MAX_TOKENS


def openai_image_extra_tokens(model: str | None, inline: int, by_reference: int) -> int:
    """Tokens to add to an estimate for ``model``: its per-image maximum less what the estimate
    already counted for ``inline`` (:data:`IMAGE_TOKENS` each) and ``by_reference`` images."""
    most = openai_image_max_tokens(model)
    return inline * max(0, most - IMAGE_TOKENS) + by_reference * max(0, most - OPENAI_IMAGE_MAX_TOKENS)


class Unmeasured(str):
    """The reference (URL or file id) of a media item the proxy cannot see; its tokens are a maximum."""

    __slots__ = ()


class OpenAIImage(str):
    """An inline image in an OpenAI request (its per-image maximum depends on the model)."""

    __slots__ = ()


class UnmeasuredOpenAIImage(Unmeasured):
    """An image by URL or file id in an OpenAI request (its per-image maximum depends on the model)."""

    __slots__ = ()


# The walk over a part's structure (decoding it, for a large body) runs only when its JSON holds a
# media-typed object: every item :func:`media_payloads` yields is an object whose "type" is one of
# these, so a part without ``"type":"<one of them>"`` has nothing to find. One regular-expression
# pass (its literal ``"type"`` prefix is searched in C, ~0.35 ms per MB) replaces a scan per marker
# (base64, image_url, file_id, ...: seven passes, ~2.2 ms per MB). Inside a JSON string a quote
# is always escaped, so a conversation that merely quotes such JSON never matches. Whitespace
# around the colon is allowed (a body compact at its top level may keep it inside a value).
_MEDIA_TYPES = ("image", "image_url", "document", "input_image", "input_file", "file")
_MEDIA_OBJECT = r'"type"[ \t\r\n]*:[ \t\r\n]*"(?:' + "|".join(_MEDIA_TYPES) + ')"'
_MEDIA_RE = re.compile(_MEDIA_OBJECT)
_MEDIA_RE_BYTES = re.compile(_MEDIA_OBJECT.encode())
_DATA_URL_HEAD = 256  # a data URL's header (media type and parameters) ends well before this


try:  # the compiled scan (setup.py, optional): the same answer on bytes, ~5x faster than the expression
    from ci_guard._bytescan import media_type as _media_type
except ImportError:
    _media_type = None


def may_carry_media(compact_json: str | bytes | memoryview) -> bool:
    """Whether a part's compact JSON (text, or its UTF-8 bytes) may hold an image or document object."""
    if isinstance(compact_json, str):
        return _MEDIA_RE.search(compact_json) is not None
    if _media_type is not None:
        return _media_type(compact_json)
    return _MEDIA_RE_BYTES.search(compact_json) is not None


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
        if isinstance(source, dict):
            if source.get("type") == "base64":
                return _payload(source.get("data"), kind == "image")
            if source.get("type") in ("url", "file"):  # Anthropic: by URL or Files API id
                ref = source.get("url") if source.get("type") == "url" else source.get("file_id")
                return _unmeasured(ref, IMAGE_TOKENS if kind == "image" else DOCUMENT_MAX_TOKENS)
    elif kind == "image_url":
        ref = node.get("image_url")
        url = ref.get("url") if isinstance(ref, dict) else ref
        return _openai_image(url, url)
    elif kind == "input_image":
        url = node.get("image_url")
        return _openai_image(url, url or node.get("file_id"))
    elif kind == "input_file":
        return _file_data(node.get("file_data")) or _unmeasured(
            node.get("file_id") or node.get("file_url"), DOCUMENT_MAX_TOKENS)
    elif kind == "file":
        ref = node.get("file")
        if isinstance(ref, dict):
            return _file_data(ref.get("file_data")) or _unmeasured(ref.get("file_id"), DOCUMENT_MAX_TOKENS)
    return None


def _unmeasured(ref: Any, tokens: int) -> tuple[str, int] | None:
    """A media item by URL or id: its reference (counted as text no more) and the item's maximum."""
    if not isinstance(ref, str) or not ref or ref.startswith("data:"):
        return None  # nothing referenced, or inline (a non-base64 data URL is its own text)
    return Unmeasured(ref), tokens


def _openai_image(url: Any, ref: Any) -> tuple[str, int] | None:
    inline = _data_url(url)
    if inline is not None:
        return OpenAIImage(inline[0]), inline[1]
    found = _unmeasured(ref, OPENAI_IMAGE_MAX_TOKENS)
    return (UnmeasuredOpenAIImage(found[0]), found[1]) if found is not None else None


def _data_url(url: Any) -> tuple[str, int] | None:
    # A plain https:// image URL is a few bytes of text, already right in the byte count.
    return (url, IMAGE_TOKENS) if isinstance(url, str) and _base64_start(url) else None


def _payload(data: Any, image: bool) -> tuple[str, int] | None:
    if not isinstance(data, str) or not data:
        return None  # nothing attached: no media to count
    return data, IMAGE_TOKENS if image else document_tokens(data)


def _file_data(data: Any) -> tuple[str, int] | None:
    # OpenAI's file_data is a ``data:application/pdf;base64,`` URL; anything else stays text.
    return _payload(data, False) if isinstance(data, str) and _base64_start(data) else None


def _base64_start(url: str) -> int:
    """Where the payload of a ``data:...;base64,`` URL starts; 0 when ``url`` is not one."""
    if not url.startswith("data:"):
        return 0
    comma = url.find(",", 0, _DATA_URL_HEAD)
    return comma + 1 if comma > 0 and url[:comma].endswith(";base64") else 0


def document_tokens(data: str) -> int:
    """Tokens of a base64 (or ``data:`` URL) document: decoded bytes / 40, at least 1,600."""
    start = _base64_start(data)
    padding = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    decoded = (len(data) - start) * 3 // 4 - padding  # line breaks are not discounted: errs high
    return max(DOCUMENT_MIN_TOKENS, -(-decoded // DOCUMENT_BYTES_PER_TOKEN))
