"""Post bodies to plain text, with code blocks kept apart from prose."""

from __future__ import annotations

import re

from lxml import etree

_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "table", "tr", "hr", "aside", "details", "summary", "section",
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


def html_to_text(html: str | None) -> tuple[str, str]:
    """Return (prose, code) from an HTML body; ``<pre>`` blocks go to code."""
    if not html or not html.strip():
        return "", ""
    try:
        # Plain etree elements: lxml.html's element classes cost a lookup per node.
        root = etree.fromstring(html, _PARSER)
    except (etree.ParserError, ValueError):
        return normalise(html), ""
    if root is None:  # nothing but comments or whitespace
        return "", ""
    code_blocks: list[str] = []
    for pre in root.iter("pre"):
        code_blocks.append("".join(pre.itertext()).strip("\n"))
    parts: list[str] = []
    _walk(root, parts)
    return normalise("".join(parts)), "\n\n".join(c for c in code_blocks if c)


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
    return normalise(prose), "\n\n".join(c for c in code if c)


def thread_text(title: str | None, body: str | None, max_chars: int = 4000) -> str:
    """The text a thread is embedded and topic-modelled by: title, then the start of its body."""
    title = (title or "").strip()
    body = (body or "").strip()
    text = f"{title}\n\n{body}" if title and body else title or body
    return text[:max_chars]
