"""Numbers written both ways, so "seven" finds a transcript that says "7" and back.

Whisper writes some numbers as digits ("7.") and some as words ("three."); users type
either. The loader appends the other spelling of every number 0-99 it finds in an
English transcript, which makes both BM25 and a dense encoder match either query.

A segment that is one word only and sounds like a number ("to.", "for.") is read as that
number too: without context Whisper picks the commoner homophone, and a lone "to" is no
sentence. Inside longer text homophones are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)?|\d+")


def number_word(n: int) -> str:
    """English words for 0 <= n < 100 ("42" -> "forty-two")."""
    if not 0 <= n < 100:
        raise ValueError(f"{n} is outside 0-99")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens - 2] + (f"-{_ONES[ones]}" if ones else "")


_WORD_VALUE = {number_word(n): n for n in range(100)}
_HOMOPHONES = {"to": 2, "too": 2, "for": 4, "fore": 4, "won": 1, "ate": 8}


def number_aliases(text: str) -> list[str]:
    """The other spelling of each number 0-99 in `text`, in order, without repeats."""
    out: list[str] = []
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) == 1 and tokens[0] in _HOMOPHONES:
        n = _HOMOPHONES[tokens[0]]
        return [number_word(n), str(n)]
    for token in tokens:
        if token.isdigit():
            alias = number_word(int(token)) if int(token) < 100 and len(token) <= 2 else None
        else:
            value = _WORD_VALUE.get(token)
            alias = str(value) if value is not None else None
        if alias is not None and alias not in out:
            out.append(alias)
    return out


def with_number_aliases(text: str) -> str:
    """`text`, followed by the other spellings of its numbers in brackets when it has any."""
    aliases = number_aliases(text)
    return f"{text} [{' '.join(aliases)}]" if aliases else text


# How Whisper may begin writing a lone spoken digit: the word, capitalised or not, or the
# numeral.
DIGIT_SPELLINGS = tuple((w, w.capitalize(), str(n)) for n, w in enumerate(_ONES[:10]))
# A short utterance is read as a digit when all spellings of that digit together are at
# least e**-MARGIN as likely as Whisper's single most likely first word. Chosen on
# espeak-ng speech, not on a benchmark: 18 common non-number words ("hello", "dog",
# "water") leave the best digit 3.9-9.5 nats behind their own first word (only "tree",
# which espeak-ng says like "three", comes closer), while spoken digits misread as other
# words ("I", "well") trail by 0.4-4.4.
MARGIN = 3.0


def number_reading(
    first_token: np.ndarray, digit_tokens: Sequence[Sequence[int]], margin: float = MARGIN
) -> int | None:
    """The digit 0-9 that a short utterance may be, or None.

    `first_token` holds log-probabilities of the first token of Whisper's reading of the
    audio; `digit_tokens[d]` the first tokens of the spellings of digit d. Greedy
    decoding writes the likeliest word, so a "two" heard as "tool." (0.21) beats "two"
    (0.09), "Two" (0.06) and "2" (0.05) one by one, but not all together (0.20) by
    much; a clear "hello" leaves every digit far behind.
    """
    per_digit = np.array([np.logaddexp.reduce(first_token[list(ids)]) for ids in digit_tokens])
    best = int(per_digit.argmax())
    return best if per_digit[best] >= first_token.max() - margin else None


def reading_aliases(text: str, digit: int) -> list[str]:
    """Spellings of `digit` that `text` (with its aliases) does not hold yet."""
    have = set(_TOKEN.findall(with_number_aliases(text).lower()))
    return [a for a in (number_word(digit), str(digit)) if a not in have]
