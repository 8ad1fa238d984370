"""Citation markers in answers: parse `[n]`, drop those naming no passage, attribute the rest.

A marker may hold several numbers (`[1, 3]`, `[2][4]`) or a range (`[1-3]`). Numbers
outside 1..n (n passages in the context) are removed from the text and reported, so an
answer never points at a passage the model did not see.

Small local models often copy a passage without citing it. `attribute` then adds the
marker of the passage a sentence overlaps most, flagged as inferred, so the answer stays
traceable; a sentence that overlaps no passage enough stays uncited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmrag.refine.sentences import split_sentences

MARKER = re.compile(r"\s?\[(\d{1,4}(?:\s*[-–,;]\s*\d{1,4})*)\]")
_NUMBER_RANGE = re.compile(r"(\d+)\s*[-–]\s*(\d+)|(\d+)")
# CJK characters count one by one; other scripts by word.
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+")
_MAX_RANGE = 50  # "[1-9999]" is noise, not a citation of every passage
# Function words say nothing about where a sentence came from ("The answer is:").
_STOPWORDS = frozenset(
    "the and for are was were has have had this that these those with from into onto "
    "answer question passage passages which what who whom whose when where why how not "
    "but its it's than then there their they them you your our can could would should "
    "will may might also been being does did about".split()
)


@dataclass(slots=True)
class Resolved:
    """The cleaned text, cited numbers in order of first mention, and what was dropped."""

    text: str
    numbers: list[int] = field(default_factory=list)
    inferred: set[int] = field(default_factory=set)
    dropped: list[int] = field(default_factory=list)


def marker_numbers(inner: str) -> list[int]:
    """The numbers inside one marker: "1, 3-4" -> [1, 3, 4]."""
    out: list[int] = []
    for m in _NUMBER_RANGE.finditer(inner):
        if m.group(3) is not None:
            out.append(int(m.group(3)))
            continue
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo <= hi and hi - lo < _MAX_RANGE:
            out.extend(range(lo, hi + 1))
        else:
            out.extend([lo, hi])
    return out


def resolve(text: str, n_context: int) -> Resolved:
    """Keep markers naming passages 1..n_context; remove and report the others."""
    result = Resolved(text="")
    seen: set[int] = set()
    dropped: set[int] = set()

    def rewrite(m: re.Match[str]) -> str:
        keep = []
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= n_context:
                if n not in keep:
                    keep.append(n)
                if n not in seen:
                    seen.add(n)
                    result.numbers.append(n)
            elif n not in dropped:
                dropped.add(n)
                result.dropped.append(n)
        if not keep:
            return ""
        lead = " " if m.group(0).startswith(" ") else ""
        return lead + "".join(f"[{n}]" for n in keep)

    result.text = MARKER.sub(rewrite, text)
    return result


def tokens(text: str, short: bool = False) -> set[str]:
    """Content words, lowercased. Words of one or two letters are left out unless
    `short`, which keeps two-letter words and every number ("25", "UK")."""
    shortest = 2 if short else 3
    words = {
        t.lower()
        for t in _TOKEN.findall(text)
        if len(t) >= shortest or not t.isascii() or (short and t.isdigit())
    }
    return words - _STOPWORDS


def attribute(
    resolved: Resolved,
    passages: Sequence[str],
    question: str = "",
    min_overlap: float = 0.5,
    min_tokens: int = 3,
) -> Resolved:
    """Cite, for each uncited sentence, the passage holding most of its words.

    Words of the question do not count: a sentence that only restates the question
    ("The answer to what causes tides is:") is supported by no passage. The share of
    a sentence's remaining words found in a passage must reach `min_overlap`, and
    sentences with fewer than `min_tokens` such words are left alone.
    """
    passage_tokens = [tokens(p) for p in passages]
    asked = tokens(question)
    text = resolved.text
    # the refiners' sentence splitter, which knows "U.S." and "Dr." do not end sentences
    out: list[str] = []
    at = 0
    for start, end in split_sentences(text):
        out.append(text[at:start])
        out.append(
            _cite_sentence(
                text[start:end], passage_tokens, asked, resolved, min_overlap, min_tokens
            )
        )
        at = end
    out.append(text[at:])
    resolved.text = "".join(out)
    return resolved


def _cite_sentence(
    sentence: str,
    passage_tokens: list[set[str]],
    asked: set[str],
    resolved: Resolved,
    min_overlap: float,
    min_tokens: int,
) -> str:
    if MARKER.search(sentence):
        return sentence
    words = tokens(sentence) - asked
    if len(words) < min_tokens:
        return sentence
    best, best_share = 0, 0.0
    for n, ptoks in enumerate(passage_tokens, 1):
        share = len(words & ptoks) / len(words)
        if share > best_share:
            best, best_share = n, share
    if best == 0 or best_share < min_overlap:
        return sentence
    if best not in resolved.numbers:
        resolved.numbers.append(best)
        resolved.inferred.add(best)
    body = sentence.rstrip()
    tail = sentence[len(body) :]
    if body and body[-1] in ".!?。！？":
        return f"{body[:-1]} [{best}]{body[-1]}{tail}"
    return f"{body} [{best}]{tail}"
