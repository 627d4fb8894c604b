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

import io
import re
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Thread
from devquarry.sources.base import Source, decode, read_bytes
from devquarry.sources.limits import MAX_FIELD_ENV, field_too_big, max_field_bytes, too_big
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
        # One overlong sentence: cut it at word boundaries. No token spans a space, so a chunk's
        # count is the sum of its words' counts (kept running: recounting the chunk is quadratic).
        chunk: list[str] = []
        used = 0
        for w in text.split():
            k = count_tokens(w)
            if chunk and used + k > max_tokens:
                pieces.append((" ".join(chunk), start, used))
                chunk, used = [], 0
            chunk.append(w)
            used += k
        if chunk:
            pieces.append((" ".join(chunk), start, used))
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
        # From the text already read (and capped), never from the path again.
        captions = webvtt.from_buffer(io.StringIO(text), format="srt" if path.suffix.lower() == ".srt" else "vtt")
    except (MalformedFileError, ValueError) as exc:
        raise InputError(path, f"not a valid caption file ({exc})") from None
    cap = max_field_bytes()
    cues = []
    for n, c in enumerate(captions, 1):
        if field_too_big(c.text, cap):
            raise too_big(path, "cue text", cap, MAX_FIELD_ENV, record=f"cue {n}", field="text")
        if c.text.strip():
            cues.append((_seconds(c.start), " ".join(c.text.split())))
    return cues


def _sentences_with_times(cues: list[tuple[float, str]]) -> list[tuple[str, float]]:
    """Join the cues' text, split it into sentences, and give each the start of the cue it begins in.

    Linear: cue offsets are ascending, so the cues a sentence begins after are found by bisection;
    it gets the latest start among them (cues listed out of time order keep that rule)."""
    offsets, latest, pos = [], [], 0
    for start, text in cues:
        offsets.append(pos)
        latest.append(max(start, latest[-1]) if latest else start)
        pos += len(text) + 1
    joined = " ".join(text for _, text in cues)
    out, pos = [], 0
    for sentence in split_sentences(joined):
        at = joined.find(sentence, pos)
        pos = at + len(sentence)
        k = bisect_right(offsets, at) - 1
        out.append((sentence, latest[k] if k >= 0 else cues[0][0]))
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
            self.current = path
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
            cap = max_field_bytes()
            for n, (body, start) in enumerate(paragraphs, 1):
                if field_too_big(body, cap):  # one "word" of megabytes: no space to cut it at
                    raise too_big(path, "paragraph", cap, MAX_FIELD_ENV, record=f"paragraph {n}", field="body_text")
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
