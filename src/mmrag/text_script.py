"""Which writing system a text is in, for models that read only some.

An English cross-encoder given a Chinese question ranks passages by noise: on CMRC 2018
the packaged ms-marco MiniLM moved the gold paragraph out of the top 3 for 40% of the
questions that hybrid retrieval had placed there (top 3: 0.97 -> 0.575). A script is
what can be told reliably from a short query; French and English look alike here,
and a Latin-script model is let through for both.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

# Unicode names start with the script ("LATIN SMALL LETTER A", "CJK UNIFIED IDEOGRAPH-4E2D");
# Japanese kana and Korean hangul are their own scripts.
_ALIASES = {"CJK": "HAN", "HIRAGANA": "KANA", "KATAKANA": "KANA", "FULLWIDTH": "LATIN"}


def char_script(char: str) -> str | None:
    """The script of one letter ("LATIN", "HAN", "CYRILLIC", ...), None for others."""
    if not char.isalpha():
        return None
    first = unicodedata.name(char, "").split(" ", 1)[0]
    return _ALIASES.get(first, first) or None


def dominant_script(text: str) -> str | None:
    """The script most of the text's letters are in; None when it has no letters.

    Han characters count three times: one carries about as much as a short word.
    """
    counts: Counter[str] = Counter()
    for char in text:
        script = char_script(char)
        if script is not None:
            counts[script] += 3 if script == "HAN" else 1
    return counts.most_common(1)[0][0] if counts else None


def normalise_scripts(scripts: Iterable[str] | None) -> frozenset[str] | None:
    """Configured script names, upper-cased; None means any script."""
    if scripts is None:
        return None
    out = frozenset(s.strip().upper() for s in scripts if s.strip())
    return frozenset(_ALIASES.get(s, s) for s in out) or None


def reads(scripts: frozenset[str] | None, text: str) -> bool:
    """Whether a model reading `scripts` (None: any) can read `text`."""
    if scripts is None:
        return True
    script = dominant_script(text)
    return script is None or script in scripts
