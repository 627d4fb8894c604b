"""Post bodies to plain text, with code blocks kept apart from prose, and encoding damage repaired."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import ftfy
from ftfy.badness import BADNESS_RE, is_bad
from lxml import etree

_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "table",
    "tr",
    "hr",
    "aside",
    "details",
    "summary",
    "section",
}
_DROP_TAGS = {"script", "style", "svg", "noscript"}
# Elements whose content is not prose (code goes to ``code``; the tail is still prose).
_SKIP_TAGS = _DROP_TAGS | {"pre"}
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)(?:^\1[ \t]*$|\Z)", re.S | re.M)
_PARSER = etree.HTMLParser(recover=True, no_network=True, remove_comments=True, remove_pis=True)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n+")
# The characters str.split() and str.strip() take as whitespace besides space, \t, \n, \r, \f and \v
# (all below U+3001; the test checks the whole range).
_ODD_SPACES = re.compile(
    "[" + re.escape("".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in " \t\n\r\f\v")) + "]"
)


def normalise(text: str) -> str:
    """Collapse runs of spaces and of blank lines; strip the ends."""
    text = text.replace("\xa0", " ")
    if text.isascii():
        simple = not ("\x1c" in text or "\x1d" in text or "\x1e" in text or "\x1f" in text)
    else:
        simple = _ODD_SPACES.search(text) is None
    if simple:
        # The common case, several times faster than the regex: where the only whitespace is
        # [ \t\r\f\v] (and \n), splitting a line on whitespace and joining with one space is the
        # same as collapsing its runs and stripping its ends.
        if (
            "  " in text or " \n" in text or "\n " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text
        ):  # else no line has a run to collapse or an end to strip (half the posts)
            text = "\n".join([" ".join(line.split()) for line in text.split("\n")])
    else:
        text = _SPACES.sub(" ", text)
        text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


# Text that was encoded as GBK/GB18030 and decoded as latin-1 (a Chinese-locale export read back
# as latin-1): every character lands in U+0080-U+00FF, and the curly quotes come out as the pairs
# ¡® ¡¯ ¡° ¡±. ftfy does not undo this (it only knows UTF-8 read as a single-byte encoding), so it
# is undone here. Only text that carries the signature is touched: a GB2312 symbol-row pair (lead
# ¡-© then a second high byte: quotes, dashes, fullwidth punctuation, Greek, Cyrillic, pinyin
# letters, box drawing) or the GBK en dash ¨C. Genuine latin-1-range text ("naïve", "Größe") almost
# never has those pairs, and text with any character above U+00FF cannot be this damage at all.
_GB_SIGNATURE = re.compile(r"[\xa1-\xa9][\xa1-\xfe]|\xa8[CD]")
# A GB18030 character: four bytes (outside GBK), else two.
_GB_CHAR = re.compile(r"[\x81-\xfe][\x30-\x39][\x81-\xfe][\x30-\x39]|[\x81-\xfe][\x40-\x7e\x80-\xfe]")
_FTFY = ftfy.TextFixerConfig(replace_lossy_sequences=False)


def _gb_char(m: re.Match) -> str:
    try:
        ch = m.group(0).encode("latin-1").decode("gb18030")
    except UnicodeDecodeError:
        return m.group(0)
    # A private-use result means the bytes were not GB text after all.
    return m.group(0) if any("\ue000" <= c <= "\uf8ff" for c in ch) else ch


def repair_gb18030(text: str) -> str:
    """Undo GBK/GB18030 bytes read as latin-1: ``¡®openai¡¯`` -> ``‘openai’``."""
    if text.isascii() or max(text) > "\xff" or not _GB_SIGNATURE.search(text):
        return text
    return _GB_CHAR.sub(_gb_char, text)


def repair(text: str | None) -> str:
    """Repair known encoding damage (mojibake) in text from a source; correct text is left alone.

    GB18030 read as latin-1 first (see above), then ftfy's encoding fixes only (UTF-8 read as
    latin-1 or Windows-1252: ``donâ€™t``). ftfy's other fixes (straight quotes, halfwidth
    characters, HTML entities) would change correct text, so they are not applied; nor is its
    replacing of lossy sequences with U+FFFD, which would only lose what the author quoted.
    """
    if not text or text.isascii():
        return text or ""
    text = repair_gb18030(text)
    if not _looks_bad(text):
        return text  # what ftfy would return: its first step gives up on text it does not find bad
    return ftfy.fix_encoding(text, _FTFY)


def _badness_windows() -> tuple[re.Pattern | None, int]:
    """A character class that every match of ftfy's mojibake detector (``BADNESS_RE``) must
    contain, and the longest match it can make; (None, 0) when its pattern has no such shape.

    ftfy's detector tries ~40 alternatives at every position of the text, which made it the
    slowest step of reading a dump (a third of a millisecond a post with any non-ASCII
    character). Each alternative has a position that only a known set of characters can fill;
    the union of those sets is searched for first (one fast pass), and the detector then runs
    only on the few characters around each hit. Derived from ftfy's own pattern, so it follows
    ftfy's upgrades; the test compares it with ``is_bad`` over the real data."""
    try:
        import re._constants as C
        import re._parser as P

        tree = P.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
        width = tree.getwidth()[1]
        if len(tree.data) != 1 or tree.data[0][0] is not C.BRANCH or width > 64:
            return None, 0
        union: set[int] = set()
        for alt in tree.data[0][1][1]:
            sets = []
            for op, av in alt.data:
                chars: set[int] | None = None
                if op is C.LITERAL:
                    chars = {av}
                elif op is C.IN:
                    chars = set()
                    for o, a in av:
                        if o is C.LITERAL:
                            chars.add(a)
                        elif o is C.RANGE:
                            chars.update(range(a[0], a[1] + 1))
                        else:  # NEGATE, CATEGORY: not a finite set
                            chars = None
                            break
                if chars:
                    sets.append(chars)
            if not sets:
                return None, 0
            union |= min(sets, key=lambda c: (sum(1 for x in c if x < 128), len(c)))
        return re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(union)) + "]"), width
    except Exception:  # another ftfy or Python: no shortcut, ftfy decides alone
        return None, 0


_BAD_CHARS, _BAD_WIDTH = _badness_windows()


def _looks_bad(text: str) -> bool:
    """Exactly ``ftfy.badness.is_bad(text)``, searching only near the characters a match needs.

    ``search(text, lo, hi)`` sees only text[lo:hi] yet its ``^`` still means the real start, and
    the pattern looks at nothing outside what it matches: a match inside a window is a match in
    the text, and every match lies inside the window (its width either side) of a needed character."""
    if _BAD_CHARS is None:
        return is_bad(text)
    width = _BAD_WIDTH
    lo = hi = -1
    for m in _BAD_CHARS.finditer(text):
        p = m.start()
        if p - width + 1 <= hi:  # overlaps the window so far: widen it
            hi = p + width
            continue
        if hi >= 0 and BADNESS_RE.search(text, lo, hi):
            return True
        lo, hi = max(0, p - width + 1), p + width
    return hi >= 0 and BADNESS_RE.search(text, lo, hi) is not None


# The body_text and code of a record whose HTML an engine converts later (``html_deferred``).
PENDING = "\x00devquarry: HTML not converted yet\x00"
_DEFERRED: ContextVar[bool] = ContextVar("devquarry_html_deferred", default=False)


@contextmanager
def html_deferred() -> Iterator[None]:
    """Within it ``html_to_text`` converts nothing and returns ``(PENDING, PENDING)`` for a body that
    has any HTML: an ingest on another engine converts the records' ``body_html`` there, in
    batches. Only sources whose records keep that HTML as ``body_html`` may be read within it."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def html_texts(html: list[str | None]) -> tuple[list[str], list[str]]:
    """``html_to_text`` of each body: (prose, code) as two lists."""
    pairs = [html_to_text(h) for h in html]
    return [p for p, _ in pairs], [c for _, c in pairs]


def html_to_text(html: str | None) -> tuple[str, str]:
    """Return (prose, code) from an HTML body; ``<pre>`` blocks go to code."""
    if not html or not html.strip():
        return "", ""
    if _DEFERRED.get():
        return PENDING, PENDING
    try:
        # Plain etree elements: lxml.html's element classes cost a lookup per node.
        root = etree.fromstring(html, _PARSER)
    except (etree.ParserError, ValueError):
        return repair(normalise(html)), ""
    if root is None:  # nothing but comments or whitespace
        return "", ""
    code_blocks: list[str] = []
    for pre in root.iter("pre"):
        code_blocks.append("".join(pre.itertext()).strip("\n"))
    parts: list[str] = []
    _walk(root, parts)
    return repair(normalise("".join(parts))), "\n\n".join(c for c in code_blocks if c)


def _walk(el, parts: list[str]) -> None:
    # lxml builds a new str on every read of .tag, .text and .tail: each is read once.
    tag = el.tag
    if tag.__class__ is not str:  # a comment or processing instruction: only its tail is text
        tag = ""
    if tag in _SKIP_TAGS:
        tail = el.tail
        if tail:
            parts.append(tail)
        return
    block = tag in _BLOCK_TAGS
    if block:
        parts.append("\n")
    if tag:
        if tag == "img":
            alt = el.get("alt")
            if alt:
                parts.append(f"[{alt}]")
        text = el.text
        if text:
            parts.append(text)
    for child in el:
        _walk(child, parts)
    if block:
        parts.append("\n")
    tail = el.tail
    if tail:
        parts.append(tail)


def markdown_to_text(md: str | None) -> tuple[str, str]:
    """Return (prose, code) from a Markdown body; fenced blocks go to code."""
    if not md:
        return "", ""
    code = [m.group(2).strip("\n") for m in _FENCE.finditer(md)]
    prose = _FENCE.sub("\n", md)
    return repair(normalise(prose)), "\n\n".join(c for c in code if c)


def thread_text(title: str | None, body: str | None, max_chars: int = 4000) -> str:
    """The text a thread is embedded and topic-modelled by: title, then the start of its body."""
    title = (title or "").strip()
    body = (body or "").strip()
    text = f"{title}\n\n{body}" if title and body else title or body
    return text[:max_chars]
