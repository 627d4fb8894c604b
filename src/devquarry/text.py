"""Post bodies to plain text, with code blocks kept apart from prose, and encoding damage repaired."""

from __future__ import annotations

import re

import ftfy
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
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)(?:^\1[ \t]*$|\Z)", re.S | re.M)
_PARSER = etree.HTMLParser(recover=True, no_network=True, remove_comments=True, remove_pis=True)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n+")


def normalise(text: str) -> str:
    """Collapse runs of spaces and of blank lines; strip the ends."""
    text = _SPACES.sub(" ", text.replace("\xa0", " "))
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
    return ftfy.fix_encoding(repair_gb18030(text), _FTFY)


def html_to_text(html: str | None) -> tuple[str, str]:
    """Return (prose, code) from an HTML body; ``<pre>`` blocks go to code."""
    if not html or not html.strip():
        return "", ""
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
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _DROP_TAGS or tag == "pre":
        if el.tail:
            parts.append(el.tail)
        return
    block = tag in _BLOCK_TAGS
    if block:
        parts.append("\n")
    if tag == "img" and el.get("alt"):
        parts.append(f"[{el.get('alt')}]")
    if el.text and tag:
        parts.append(el.text)
    for child in el:
        _walk(child, parts)
    if block:
        parts.append("\n")
    if el.tail:
        parts.append(el.tail)


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
