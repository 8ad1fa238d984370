"""Answer metrics of the official QA evaluation scripts, as small pure functions.

- SQuAD v1.1 (`evaluate-v1.1.py`): lowercase, drop ASCII punctuation, drop the articles
  a/an/the, collapse whitespace; EM is equality, F1 is over bags of words; both take the
  maximum over the gold answers.
- HotpotQA (`hotpot_evaluate_v1.py`): the same normalisation and F1, except that a
  yes/no/noanswer prediction or gold scores F1 0 unless the two are equal.
- CMRC 2018 (`cmrc2018_evaluate.py`): lowercase, strip, drop the script's punctuation
  list; EM is equality; F1 is the longest common *contiguous* run of segments (each
  Chinese character is a segment, other text is split into words) over the lengths.

The `contains_*` functions decide whether a gold answer occurs in a passage under the
same normalisation, for "is the answer in what was cited".
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# ---- SQuAD v1.1 ------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
# "[3]" citation markers are the pipeline's, not part of the answer.
_MARKER = re.compile(r"\[\d+\]")


def strip_citation_markers(text: str) -> str:
    return _MARKER.sub(" ", text)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalize_answer, in its order: lower, punctuation, articles, spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains_squad(passage: str, gold: str) -> bool:
    """The normalised gold answer occurs in the normalised passage as whole words."""
    needle = normalize_answer(gold)
    return bool(needle) and f" {needle} " in f" {normalize_answer(passage)} "


# ---- HotpotQA --------------------------------------------------------------------

_SPECIAL = ("yes", "no", "noanswer")


def hotpot_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction), normalize_answer(gold)
    if (predicted in _SPECIAL or expected in _SPECIAL) and predicted != expected:
        return 0.0
    return squad_f1(prediction, gold)


# ---- CMRC 2018 -------------------------------------------------------------------

# The script's own list (sp_char): ASCII '.', ',', '?', '!' and quotes are not in it;
# "……" is one entry of two characters, so a text read character by character never
# matches it: kept for fidelity.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") | {"……"}
_HAN = re.compile(r"[\u4e00-\u9fa5]")  # the script's range
# nltk.word_tokenize stands for the non-Chinese runs in the script; nltk is not a
# dependency (and its sentence splitter is a download), so its word rules that matter for
# answers are applied here: a final period, commas and colons not before a digit, the
# marks ;@#$%&?!*()[]{}<>, dashes and "--" are split off, '"' becomes `` or '' as it opens or
# closes, clitics ('s, n't, a closing ') are split, and the rest stays attached ("3.5",
# "1,000", "50％", "w."). Checked against nltk 3.10's tokenizer on CMRC 2018 answers.
_FINAL_PERIOD = re.compile(r"([^.])(\.)([\])}>\"']*)\s*$")
_COMMA_COLON = re.compile(r"[:,](?!\d)")
_MARKS = re.compile(r"\.{2,}|--|[;@#$%&?!*()\[\]{}<>\u2012-\u2015«»‘„]")
_OPENING_QUOTE = re.compile(r'^"|(?<=[ (\[{<])"')
_CLITICS = re.compile(r"([^' ])('ll|'re|'ve|n't|'s|'m|'d|')(?=\s|$)")


def _words(run: str) -> list[str]:
    run = _OPENING_QUOTE.sub(" `` ", run)  # before the marks are spaced out, as nltk does
    run = _FINAL_PERIOD.sub(r"\1 \2 \3 ", run)
    run = _COMMA_COLON.sub(r" \g<0> ", run)
    run = _MARKS.sub(r" \g<0> ", run).replace('"', " '' ")
    return _CLITICS.sub(r"\1 \2", run).split()


def cmrc_remove_punctuation(text: str) -> str:
    text = text.lower().strip()
    return "".join(ch for ch in text if ch not in CMRC_PUNCTUATION)


def cmrc_segments(text: str, remove_punctuation: bool = False) -> list[str]:
    """mixed_segmentation: Chinese characters (and kept marks) one by one, other runs as words.

    As in the script, a removed mark does not end the run it sits in ("e-mail" -> "email").
    """
    text = text.lower().strip()
    out: list[str] = []
    run = ""
    for ch in text:
        if remove_punctuation and ch in CMRC_PUNCTUATION:
            continue
        if _HAN.match(ch) or ch in CMRC_PUNCTUATION:
            out.extend(_words(run))
            run = ""
            out.append(ch)
        else:
            run += ch
    out.extend(_words(run))
    return out


def longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous subsequence (the script's find_lcs)."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_exact_match(prediction: str, gold: str) -> float:
    return float(cmrc_remove_punctuation(prediction) == cmrc_remove_punctuation(gold))


def cmrc_f1(prediction: str, gold: str) -> float:
    expected = cmrc_segments(gold, remove_punctuation=True)
    predicted = cmrc_segments(prediction, remove_punctuation=True)
    same = longest_common_run(expected, predicted)
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains_cmrc(passage: str, gold: str) -> bool:
    """Substring test after the script's punctuation removal (Chinese has no word edges)."""
    needle = cmrc_remove_punctuation(gold)
    return bool(needle) and needle in cmrc_remove_punctuation(passage)


# ---- per dataset -----------------------------------------------------------------

Metric = Callable[[str, str], float]


@dataclass(frozen=True, slots=True)
class AnswerScorer:
    """One dataset's official EM and F1, and its answer-in-passage test."""

    exact_match: Metric
    f1: Metric
    contains: Callable[[str, str], bool]

    def score(self, prediction: str, golds: Sequence[str]) -> tuple[float, float]:
        """(EM, F1) of an answer, each the maximum over the gold answers (0 with none).

        Citation markers are removed first: they are the pipeline's, not the answer's.
        """
        text = strip_citation_markers(prediction)
        if not golds:
            return 0.0, 0.0
        return (
            max(self.exact_match(text, g) for g in golds),
            max(self.f1(text, g) for g in golds),
        )

    def found_in(self, passages: Sequence[str], golds: Sequence[str]) -> bool:
        return any(self.contains(p, g) for p in passages for g in golds)


SCORERS: dict[str, AnswerScorer] = {
    "squad": AnswerScorer(squad_exact_match, squad_f1, contains_squad),
    "hotpotqa": AnswerScorer(squad_exact_match, hotpot_f1, contains_squad),
    "cmrc2018": AnswerScorer(cmrc_exact_match, cmrc_f1, contains_cmrc),
}
