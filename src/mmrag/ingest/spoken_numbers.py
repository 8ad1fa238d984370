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
