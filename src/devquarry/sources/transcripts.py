"""Talk transcripts (WebVTT, SRT, plain text) split into paragraphs for topic modelling.

The practitioner-talk study split transcripts into paragraphs of at most ~300 tokens before
topic modelling. Here sentences are packed greedily into paragraphs of at most ``max_tokens``
tokens (words and punctuation marks, a close proxy for a sentence encoder's word pieces);
a paragraph never ends mid-sentence unless one sentence alone is longer than the limit.
Plain text keeps its own blank-line paragraphs, split further when too long. Each paragraph
becomes a thread of source ``transcript``: its talk (the file name) in ``category`` and its
time offset in seconds in ``raw`` and in the title.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Thread
from devquarry.sources.base import Source, decode, read_bytes
from devquarry.text import repair

SOURCE = "transcript"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def pack(sentences: list[tuple[str, float | None]], max_tokens: int) -> list[tuple[str, float | None]]:
    """Greedily pack (sentence, start) pairs into paragraphs of at most max_tokens tokens."""
    pieces: list[tuple[str, float | None, int]] = []
    for text, start in sentences:
        n = count_tokens(text)
        if n <= max_tokens:
            pieces.append((text, start, n))
            continue
        words = text.split()  # one overlong sentence: cut it at word boundaries
        chunk: list[str] = []
        for w in words:
            if chunk and count_tokens(" ".join(chunk + [w])) > max_tokens:
                pieces.append((" ".join(chunk), start, count_tokens(" ".join(chunk))))
                chunk = []
            chunk.append(w)
        if chunk:
            pieces.append((" ".join(chunk), start, count_tokens(" ".join(chunk))))
    paragraphs: list[tuple[str, float | None]] = []
    current: list[str] = []
    current_start: float | None = None
    used = 0
    for text, start, n in pieces:
        if current and used + n > max_tokens:
            paragraphs.append((" ".join(current), current_start))
            current, used = [], 0
        if not current:
            current_start = start
        current.append(text)
        used += n
    if current:
        paragraphs.append((" ".join(current), current_start))
    return paragraphs


def _seconds(stamp: str) -> float:
    m = _TIME.fullmatch(stamp.strip())
    if not m:
        raise ValueError(stamp)
    h, mnt, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def _cues(path: Path, text: str) -> list[tuple[float, str]]:
    """(start seconds, text) of each caption cue, read with webvtt-py."""
    import webvtt
    from webvtt.errors import MalformedFileError

    try:
        if path.suffix.lower() == ".srt":
            captions = webvtt.from_srt(path)
        else:
            captions = webvtt.from_buffer(__import__("io").StringIO(text))
    except (MalformedFileError, ValueError) as exc:
        raise InputError(path, f"not a valid caption file ({exc})") from None
    return [(_seconds(c.start), " ".join(c.text.split())) for c in captions if c.text.strip()]


def _sentences_with_times(cues: list[tuple[float, str]]) -> list[tuple[str, float]]:
    """Join the cues' text, split it into sentences, and give each the start of the cue it begins in."""
    joined, starts = "", []
    for start, text in cues:
        if joined:
            joined += " "
        starts.append((len(joined), start))
        joined += text
    out, pos = [], 0
    for sentence in split_sentences(joined):
        at = joined.find(sentence, pos)
        pos = at + len(sentence)
        begin = max((s for off, s in starts if off <= at), default=cues[0][0])
        out.append((sentence, begin))
    return out


class TranscriptSource(Source):
    kind = "transcripts"

    def __init__(self, paths, *, max_tokens: int = 300, encoding: str = "utf-8") -> None:
        super().__init__(paths)
        if max_tokens < 10:
            raise InputError(None, "--max-tokens must be at least 10", field="max_tokens")
        self.max_tokens = max_tokens
        self.encoding = encoding

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_tokens": self.max_tokens}

    def records(self) -> Iterator[Record]:
        for path in self.paths:
            text = repair(decode(read_bytes(path, self.progress), path, self.encoding))
            suffix = path.suffix.lower()
            if suffix in (".vtt", ".srt"):
                cues = _cues(path, text)
                if not cues:
                    raise InputError(path, "no caption cues found")
                paragraphs = pack(_sentences_with_times(cues), self.max_tokens)
            elif suffix in (".txt", ".md", ""):
                blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text) if b.strip()]
                paragraphs = [p for b in blocks for p in pack([(s, None) for s in split_sentences(b)], self.max_tokens)]
            else:
                raise InputError(path, f"unknown transcript format {suffix!r}; use .vtt, .srt or .txt")
            talk = path.stem
            for n, (body, start) in enumerate(paragraphs, 1):
                when = f" [{int(start // 60):02d}:{int(start % 60):02d}]" if start is not None else ""
                yield Thread(
                    source=SOURCE,
                    source_id=f"{path.name}#{n}",
                    title=f"{talk} ¶{n}{when}",
                    body_text=body,
                    category=talk,
                    tags=[],
                    raw={"talk": talk, "file": path.name, "paragraph": n, "start_seconds": start, "tokens": count_tokens(body)},
                )
