"""Sentence and word boundaries as character offsets, for English, Chinese and mixed text.

Refiners keep or drop whole sentences or whole words, and record what they kept as
offsets into the passage, so every boundary here is a `(start, end)` pair into the
original string (never a rebuilt copy of it).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

# CJK ideographs, kana, hangul and full-width forms: scripts written without spaces.
CJK = r"\u3001-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{CJK}]")

# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace, at CJK
# sentence punctuation (no space follows it in Chinese), or at a blank line.
_CLOSERS = "\"'”’」』）)》】"
_BOUNDARY = re.compile(rf"[.!?]+[{_CLOSERS}]*(?=\s)|[。！？；!?]+[{_CLOSERS}]*|\n\s*\n")
# Words before a period that do not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e al inc ltd co corp no vol fig jan feb "
    "mar apr jun jul aug sep sept oct nov dec gen col lt sgt rev est approx dept univ".split()
)
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)\.+$")
_SPLIT_POINT = re.compile(r"[,;:，、；：]\s*|\s+")
# Word units: a CJK run (segmented further below), or a run of non-space, non-CJK chars.
_UNIT = re.compile(f"[{CJK}]+|[^\\s{CJK}]+")


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period that ends at `end` closes an abbreviation or an initial."""
    if text[end - 1] != ".":
        return False
    match = _WORD_BEFORE.search(text, max(0, end - 12), end)
    if match is None:
        return False
    word = match.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    # "U.S." or "J. Smith": a single letter (possibly after other initials).
    return len(word.split(".")[-1]) == 1


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Split an over-long sentence at the last comma or space before `max_chars`."""
    pieces: list[tuple[int, int]] = []
    while end - start > max_chars:
        cut = None
        for match in _SPLIT_POINT.finditer(text, start + max_chars // 2, start + max_chars):
            cut = match.end()
        if cut is None:  # no comma or space (a long CJK run): cut at the limit itself
            cut = start + max_chars
        a, b = _strip(text, start, cut)
        if b > a:
            pieces.append((a, b))
        start = cut
    a, b = _strip(text, start, end)
    if b > a:
        pieces.append((a, b))
    return pieces


def split_sentences(text: str, max_chars: int = 600) -> list[tuple[int, int]]:
    """Sentence spans of `text`, whitespace trimmed, in order.

    Sentences longer than `max_chars` are cut at a comma or space so one run-on
    "sentence" (a list, a table row) cannot exceed a small budget on its own.
    """
    if max_chars < 16:
        raise ValueError("max_chars must be at least 16")
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group().startswith(".") and _is_abbreviation(text, match.start() + 1):
            continue
        # "e.g. the ..." or "3 p.m. on": a lower-case continuation is not a new sentence.
        nxt = re.compile(r"\s*(\S)").match(text, end)
        if match.group()[0] in ".!?" and nxt is not None and nxt.group(1).islower():
            continue
        spans.extend(_cut_long(text, start, end, max_chars))
        start = end
    spans.extend(_cut_long(text, start, len(text), max_chars))
    return spans


@lru_cache(maxsize=1)
def _cjk_segmenter() -> object | None:
    try:
        import rjieba
    except ImportError:
        return None
    return rjieba


def word_spans(text: str) -> np.ndarray:
    """(n, 2) int64 array of word spans: space-delimited words; CJK runs cut into words.

    CJK runs are segmented with rjieba when it is installed (whole words such as
    "北京大学" stay together), otherwise into single characters. Spans never split a
    character, so pruning by these units cannot garble multibyte text.
    """
    spans: list[tuple[int, int]] = []
    segmenter = _cjk_segmenter()
    for match in _UNIT.finditer(text):
        a, b = match.span()
        if _CJK_CHAR.match(text, a) is None:
            spans.append((a, b))
        elif segmenter is not None:
            pos = a
            for word in segmenter.cut(text[a:b]):  # type: ignore[attr-defined]
                spans.append((pos, pos + len(word)))
                pos += len(word)
        else:
            spans.extend((i, i + 1) for i in range(a, b))
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def is_cjk(char: str) -> bool:
    return bool(char) and _CJK_CHAR.match(char) is not None


def join_pieces(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """The kept pieces of `text` as one string, and the spans merged across mere whitespace.

    Pieces are joined by a space, or by nothing where either side is CJK (Chinese has
    no spaces, and an inserted one would change the text an answer is matched against).
    """
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and (a <= merged[-1][1] or not text[merged[-1][1] : a].strip()):
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    parts: list[str] = []
    for i, (a, b) in enumerate(merged):
        if i and not (is_cjk(text[a]) or is_cjk(text[merged[i - 1][1] - 1])):
            parts.append(" ")
        parts.append(text[a:b])
    return "".join(parts), merged
