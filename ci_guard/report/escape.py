"""Make untrusted text inert in GitHub and GitLab markdown.

Branch names, PR titles, usernames, model names and provider error text come from people and
agents we do not trust. Rendered into a comment they must not break a table, inject HTML or
markdown (links, images, headings, math), or notify anyone: ``@user`` and ``@org/team`` ping
on both forges, and GitLab also links ``!12`` (merge requests), ``~label``, ``%milestone``,
``$snippet`` and ``&epic``. ``#123`` issue links are harmless and left alone. A line that starts
with ``/`` is a GitLab quick action (``/merge``, ``/close``, ``/approve``) run with the rights of
the token that posts the note, so escaped text never starts with ``/``; and since newlines are
folded, only the start of the text can start a line.

Two outputs are :class:`Safe`: text escaped here and markup built by trusted filters. The
renderer's ``finalize`` hook escapes every other string, so a template that forgets a filter
still cannot inject anything.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from ci_guard.text import clean

MAX_LEN = 200
MAX_OBJECT_LEN = 2000  # a list or dict a custom template outputs whole
ZWJ = "\u200d"  # zero-width joiner: invisible, but breaks the reference and mention patterns

# ASCII punctuation that has a meaning somewhere in GFM / GLFM inline syntax or tables.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()|~$!+#>=^-])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
# Invisible characters that change what a reader sees: bidi embeddings, overrides and isolates
# (U+202E makes "gpj.exe" read "exe.jpg"), marks, zero-width spaces/joiners, word joiner, BOM,
# Mongolian vowel separator. Dropped before escaping (our own ZWJ is added after).
_INVISIBLE = re.compile("[\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+")
# a sigil followed by something a forge would resolve as a user, team or reference; the name may
# already carry one of our backslashes (``@\_admin`` renders as ``@_admin`` and still pings)
_MENTION = re.compile(r"([@!~%$]|&amp;)(?=\\?[\w\"'.:/-])")
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


class Safe(str):
    """A string that is already markdown: the renderer outputs it as is."""

    __slots__ = ()


def truncate(text: str, max_len: int = MAX_LEN) -> str:
    """Cut ``text`` to ``max_len`` characters, ending with an ellipsis when something was cut."""
    if max_len <= 0 or len(text) <= max_len:
        return text
    return text[: max_len - 1].rstrip() + "…"


def one_line(text: object) -> str:
    """Collapse newlines, tabs and other control characters to single spaces; drop invisible ones.

    Lone surrogates (a model name the agent picked, a non-UTF-8 branch) become U+FFFD: the comment
    must still be postable.
    """
    plain = clean("" if text is None else str(text))
    return _CONTROL.sub(" ", _INVISIBLE.sub("", plain)).strip()


def md(text: object, max_len: int = MAX_LEN) -> Safe:
    """Escape untrusted text for inline use, table cells included. ``None`` becomes ``—``."""
    if text is None or text == "":
        return Safe("—")
    if isinstance(text, Safe):
        return text
    plain = truncate(one_line(text), max_len)
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    plain = _MD_SPECIAL.sub(r"\\\1", plain)
    # after the backslashes: a forge resolves mentions and references on the rendered text
    plain = _MENTION.sub(lambda m: m.group(1) + ZWJ, plain)
    plain = _AUTOLINK.sub(lambda m: m.group(1)[:-1] + ZWJ + m.group(1)[-1], plain)
    return Safe(no_quick_action(plain))


def no_quick_action(text: str) -> str:
    """``\\/`` for a leading ``/``: renders as ``/`` but is no GitLab quick action at a line start."""
    return "\\" + text if text.startswith("/") else text


def code(text: object, max_len: int = MAX_LEN) -> Safe:
    """Untrusted text as an inline code span (nothing inside is interpreted, nobody is pinged)."""
    if text is None or text == "":
        return Safe("—")
    plain = truncate(one_line(text), max_len)
    # GFM splits table cells on `|` even inside code spans; `\|` is the documented escape there
    plain = plain.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", plain)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if plain.startswith("`") or plain.endswith("`") else ""
    return Safe(f"{fence}{pad}{plain}{pad}{fence}")


def link(text: object, url: object) -> Safe:
    """A markdown link with escaped text, only for plain http(s) URLs; otherwise just the text."""
    label = md(text)
    target = one_line(url)
    if not re.fullmatch(r"https?://[^\s<>\"'`]+", target):
        return label
    target = target.replace("(", "%28").replace(")", "%29")
    return Safe(f"[{label}]({target})")


def finalize(value: object) -> str:
    """The renderer's output hook: safe markup passes, every other string is escaped."""
    if value is None:
        return "—"
    if isinstance(value, Safe):
        return value
    if isinstance(value, str):
        return md(value)
    if isinstance(value, (int, float, Decimal)):  # bool is an int
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    # lists, dicts, objects: their repr holds raw strings (mentions, markup, a leading "/")
    return md(str(value), MAX_OBJECT_LEN)
