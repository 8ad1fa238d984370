"""Split text into token-bounded chunks whose character spans point back into the text.

Sizes are counted with a Hugging Face *fast* tokenizer (by default the one of the
packaged all-MiniLM-L6-v2 encoder), without special tokens, so a chunk of
`max_tokens` tokens fits an encoder whose limit is `max_tokens` plus [CLS]/[SEP].

A chunk ends, by preference, at a paragraph break, then a sentence end, then a line
break, then any word boundary, looking only in the last fifth of the token window so
chunks stay close to full size. It never ends inside a word unless a run of text has
no word boundary at all (a long URL, base64), and never inside a character: spans are
Python string offsets taken from the tokenizer's offset mapping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer, pre_tokenizers

from mmrag.errors import ConfigError
from mmrag.types import Document, Modality, Span

if TYPE_CHECKING:
    from mmrag.ingest.files import SourceFile

DEFAULT_TOKENIZER_MODEL = "all-MiniLM-L6-v2"
# Fraction of the window, at its end, searched for a good place to cut.
BOUNDARY_WINDOW = 0.2
# Texts are tokenised in pieces of about this many characters, cut after whitespace:
# one huge encode() call is several times slower than a batch of pieces.
_PIECE_CHARS = 16_000

# Boundary strengths between two tokens; higher is a better place to end a chunk.
# _NEVER: both tokens come from the same character (byte-level tokenizers split emoji).
_PARAGRAPH, _SENTENCE, _LINE, _WORD, _INSIDE_WORD, _NEVER = 4, 3, 2, 1, 0, -1

_SENTENCE_END = frozenset(".!?…。！？")
_CJK_SENTENCE_END = frozenset("。！？；")
_CLOSERS = frozenset("\"')]}»”’」』）")
_WHITESPACE = re.compile(r"\s")
# Tokenizers whose pre-tokenizer splits on whitespace give the same tokens for a piece
# of text as for the whole, so their chunk counts are exact without re-checking.
_WHITESPACE_SPLITTERS = (
    pre_tokenizers.BertPreTokenizer,
    pre_tokenizers.Whitespace,
    pre_tokenizers.WhitespaceSplit,
)


def _is_cjk(char: str) -> bool:
    """Scripts written without spaces, where a cut between two characters is a word boundary."""
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x3FFFF  # ideograph extensions
    ) and not 0x3130 <= code <= 0x318F  # Hangul jamo: Korean separates words by spaces


class TokenCounter:
    """A fast tokenizer prepared for counting: no truncation, no padding, no special tokens."""

    def __init__(self, tokenizer: Any) -> None:
        # transformers' fast tokenizers wrap a tokenizers.Tokenizer.
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not isinstance(backend, Tokenizer):
            raise ConfigError(
                f"chunking needs a Hugging Face fast tokenizer (tokenizers.Tokenizer), "
                f"got {type(tokenizer).__name__}"
            )
        if backend.truncation is not None or backend.padding is not None:
            # Copy rather than switch off truncation on the caller's object.
            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        self.tokenizer = backend
        self.exact_pieces = isinstance(backend.pre_tokenizer, _WHITESPACE_SPLITTERS)

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Start and end character offsets of every token of `text`, in order."""
        bounds = _piece_bounds(text)
        encodings = self.tokenizer.encode_batch(
            [text[a:b] for a, b in bounds], add_special_tokens=False
        )
        parts = [
            np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2) + a
            for (a, _), e in zip(bounds, encodings, strict=True)
        ]
        spans = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
        # Some tokenizers emit zero-width tokens (e.g. a lone prefix marker); they
        # take no room in the text but still count, so they are kept.
        return spans[:, 0], spans[:, 1]


def _piece_bounds(text: str) -> list[tuple[int, int]]:
    """Cut `text` into pieces right after a whitespace character, about every _PIECE_CHARS."""
    bounds = []
    start = 0
    while len(text) - start > _PIECE_CHARS:
        match = _WHITESPACE.search(text, start + _PIECE_CHARS)
        if match is None:
            break
        bounds.append((start, match.end()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


@lru_cache(maxsize=1)
def default_counter() -> TokenCounter:
    """The all-MiniLM-L6-v2 tokenizer from its packaged model folder (offline)."""
    from mmrag.models.resolve import resolve_model

    path = Path(resolve_model(DEFAULT_TOKENIZER_MODEL)) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"no tokenizer.json in {path.parent} for {DEFAULT_TOKENIZER_MODEL!r}")
    return TokenCounter(Tokenizer.from_file(str(path)))


def token_counter(tokenizer: Any = None) -> TokenCounter:
    if tokenizer is None:
        return default_counter()
    if isinstance(tokenizer, TokenCounter):
        return tokenizer
    return TokenCounter(tokenizer)


class _Cutter:
    """Finds chunk boundaries over one text's token offsets."""

    def __init__(self, text: str, starts: np.ndarray, ends: np.ndarray) -> None:
        self.text = text
        self.starts = starts.tolist()
        self.ends = ends.tolist()
        self.n = len(self.starts)

    def strength(self, k: int) -> int:
        """How good a chunk end is between token k-1 and token k (0 < k < n)."""
        text = self.text
        left_end, right_start = self.ends[k - 1], self.starts[k]
        if right_start < left_end or left_end == 0 or right_start == len(text):
            # Overlapping tokens share a character; zero-width tokens at either end of
            # the text leave nothing to split.
            return _NEVER if right_start < left_end else _WORD
        gap = text[left_end:right_start]
        if any(c.isspace() for c in gap):
            newlines = gap.count("\n")
            if newlines >= 2:
                return _PARAGRAPH
            if self._ends_sentence(left_end, right_start):
                return _SENTENCE
            return _LINE if newlines else _WORD
        if text[self._before_closers(left_end)] in _CJK_SENTENCE_END:
            return _SENTENCE
        left, right = text[left_end - 1], text[right_start]
        if _is_cjk(left) or _is_cjk(right):
            return _WORD
        return _INSIDE_WORD

    def _before_closers(self, left_end: int) -> int:
        """Index of the last character before `left_end` that is not a closing quote or bracket."""
        i = left_end - 1
        while i > 0 and self.text[i] in _CLOSERS:
            i -= 1
        return i

    def _ends_sentence(self, left_end: int, right_start: int) -> bool:
        text = self.text
        i = self._before_closers(left_end)
        if text[i] not in _SENTENCE_END:
            return False
        # "e.g. the" or "approx. five" is not a sentence end; "end. The" is.
        return text[i] != "." or not text[right_start].islower()

    def best_end(self, i: int, limit: int, max_tokens: int) -> tuple[int, bool]:
        """End (exclusive) of the chunk starting at token i, and whether it is a clean cut."""
        low = max(i + 1, i + math.ceil(max_tokens * (1 - BOUNDARY_WINDOW)))
        best_k, best = limit, _NEVER - 1
        for k in range(limit, low - 1, -1):  # from the end, so ties keep the longer chunk
            s = self.strength(k)
            if s > best:
                best_k, best = k, s
                if s == _PARAGRAPH:
                    break
        if best > _INSIDE_WORD:
            return best_k, True
        for k in range(low - 1, i, -1):  # no boundary near the end: take the last one anywhere
            if self.strength(k) > _INSIDE_WORD:
                return k, True
        # A run with no word boundary at all (a long URL, base64): cut between tokens.
        for k in range(limit, i, -1):
            if self.strength(k) == _INSIDE_WORD:
                return k, False
        return limit, False

    def next_start(self, i: int, k: int, overlap: int) -> int:
        """First token of the next chunk: `overlap` tokens back from k, then on to a word start."""
        if overlap <= 0:
            return k
        s = max(k - overlap, i + 1)
        while s < k and self.strength(s) < _WORD:
            s += 1
        return s

    def char_span(self, i: int, k: int) -> tuple[int, int]:
        """Characters of tokens i..k-1, widened over adjacent characters no token covers.

        Tokenizers drop some characters (combining accents, control and format
        characters); keeping them with their neighbours avoids splitting a grapheme.
        """
        text = self.text
        start, end = self.starts[i], self.ends[k - 1]
        floor = self.ends[i - 1] if i > 0 else 0
        while start > floor and not text[start - 1].isspace():
            start -= 1
        ceiling = self.starts[k] if k < self.n else len(text)
        while end < ceiling and not text[end].isspace():
            end += 1
        return start, end


def _trimmed(text: str) -> list[tuple[int, int]]:
    stripped = text.strip()
    if not stripped:
        return []
    start = len(text) - len(text.lstrip())
    return [(start, start + len(stripped))]


def chunk_spans(
    text: str, max_tokens: int = 256, overlap: int = 32, tokenizer: Any = None
) -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the chunks of `text`, in order.

    Each chunk has at most `max_tokens` tokens; consecutive chunks share up to
    `overlap` tokens (fewer when the overlap would start inside a word).
    `max_tokens=0` means no chunking: one span for the whole (stripped) text.
    Blank text gives no chunk.
    """
    if max_tokens < 0:
        raise ConfigError(f"max_tokens must be >= 0, got {max_tokens}")
    if overlap < 0 or (max_tokens > 0 and overlap >= max_tokens):
        raise ConfigError(f"overlap must be >= 0 and < max_tokens ({max_tokens}), got {overlap}")
    if max_tokens == 0 or not text.strip():
        return _trimmed(text)
    counter = token_counter(tokenizer)
    starts, ends = counter.offsets(text)
    if len(starts) <= max_tokens:
        return _trimmed(text)
    spans = _cut(text, starts, ends, max_tokens, overlap, counter, verify_all=False)
    if not counter.exact_pieces:
        # Tokens of a piece can differ from the tokens of the whole text at its edges
        # (byte-level BPE, SentencePiece); re-count, and cut again strictly if needed.
        if max(counter.count_many([text[a:b] for a, b in spans])) > max_tokens:
            spans = _cut(text, starts, ends, max_tokens, overlap, counter, verify_all=True)
    return spans


def _cut(
    text: str,
    starts: np.ndarray,
    ends: np.ndarray,
    max_tokens: int,
    overlap: int,
    counter: TokenCounter,
    verify_all: bool,
) -> list[tuple[int, int]]:
    cutter = _Cutter(text, starts, ends)
    spans: list[tuple[int, int]] = []
    i = 0
    while True:
        limit = min(i + max_tokens, cutter.n)
        if limit == cutter.n:
            k, clean = limit, True
        else:
            k, clean = cutter.best_end(i, limit, max_tokens)
        span = cutter.char_span(i, k)
        if verify_all or not clean:
            # A chunk cut inside a word is re-tokenised on its own and may count more
            # tokens (a word-initial piece is not the same as a "##" continuation).
            while k > i + 1 and counter.count(text[span[0] : span[1]]) > max_tokens:
                k -= 1
                span = cutter.char_span(i, k)
        spans.append(span)
        if k >= cutter.n:
            return spans
        i = cutter.next_start(i, k, overlap)


def chunk_documents(
    source: SourceFile, max_tokens: int = 256, overlap: int = 32, tokenizer: Any = None
) -> list[Document]:
    """The text chunks of every section of `source`, numbered across the whole source.

    A chunk's span is relative to its section's coordinate space: for a paged source
    (PDF) the page's text, otherwise the source's whole extracted text, of which each
    section is the slice starting at `section.offset`. The source's ready-made media
    documents follow the text chunks.
    """
    docs: list[Document] = []
    for section in source.sections:
        for start, end in chunk_spans(section.text, max_tokens, overlap, tokenizer):
            metadata: dict[str, Any] = {**source.metadata, **section.metadata}
            metadata["title"] = source.title
            if section.page is not None:
                metadata["page"] = section.page
            n = len(docs)
            docs.append(
                Document(
                    id=f"{source.source_id}#{n}",
                    text=section.text[start:end],
                    modality=Modality.TEXT,
                    source_id=source.source_id,
                    source=str(source.path),
                    span=Span(start + section.offset, end + section.offset, section.page),
                    metadata=metadata,
                )
            )
    docs.extend(source.media)
    return docs
