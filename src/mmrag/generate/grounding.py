"""Is an answer backed by its passages? Per-sentence support checks and the not-found test.

A `Judge` scores (claim, passage) pairs: the claim is an answer sentence for support, or
the question for relevance. Two judges stand behind one interface: a cross-encoder
(ms-marco MiniLM on ONNX Runtime, fast) and the language model itself asked yes or no
(slow: one prompt per pair). bench/grounding.py measures both on claims built from SQuAD;
its figures set the default thresholds below.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmrag.errors import ConfigError
from mmrag.generate.base import SentenceSupport
from mmrag.generate.citations import MARKER, marker_numbers, tokens
from mmrag.models.lm import LanguageModel
from mmrag.refine.sentences import split_sentences
from mmrag.registry import Registry


class Judge(ABC):
    """Scores how well each passage supports a claim; higher is better supported.

    `support_threshold`: a sentence whose best cited passage scores below it is
    unsupported. `relevance_threshold`: when no passage scores at least this for the
    question itself, the material does not hold the answer.
    """

    name: str
    support_threshold: float
    relevance_threshold: float

    @abstractmethod
    def scores(self, claim: str, passages: Sequence[str]) -> np.ndarray: ...

    def answer_scores(self, question: str, answer: str, passages: Sequence[str]) -> np.ndarray:
        """Scores for a short answer ("1440", "Gutenberg"), which means nothing alone:
        it is judged as the statement "question + answer"."""
        return self.scores(f"{question} {answer}", passages)


class CrossEncoderJudge(Judge):
    """The ms-marco cross-encoder's logit for (claim, passage): trained on question ->
    passage relevance, it also ranks a statement's own passage above others.

    Thresholds (bench/results/grounding.json, SQuAD claims): relevance 3.0, rounded from
    the best balanced accuracy on half the items (3.2; held out: 80% of answerable
    questions kept, 87% of unanswerable refused). Support 0.0: the benchmark's supported
    claims are verbatim passage sentences, which score far higher (median 8.9) than the
    paraphrases models write, so its balanced point (7.6) would reject correct answers;
    at 0.0 nearly every claim checked against a wrong passage is caught, a wrong detail
    inside the right passage less often (this model reads relevance, not entailment).
    """

    name = "cross-encoder"

    def __init__(
        self,
        model: str = "ms-marco-MiniLM-L-12-v2",
        support_threshold: float = 0.0,
        relevance_threshold: float = 3.0,
        threads: int = 1,
    ) -> None:
        from mmrag.rerank.onnx_cross_encoder import OnnxCrossEncoderReranker

        self._model = OnnxCrossEncoderReranker(model, threads=threads)
        self.support_threshold = support_threshold
        self.relevance_threshold = relevance_threshold

    def scores(self, claim: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0)
        return np.asarray(self._model.pair_scores(claim, list(passages)), dtype=np.float64)

    def reads(self, text: str) -> bool:
        return self._model.reads(text)


_HAN_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")


def _units(text: str) -> set[str]:
    """Words, and for Chinese the pairs of adjacent characters (one character alone,
    的 or 是, is in every passage)."""
    out = {w for w in _words(_HAN_RUN.sub(" ", text))}
    for run in _HAN_RUN.findall(text):
        out.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return out


class LexicalJudge(Judge):
    """The share of a claim's words (Chinese: character pairs) found in the passage.

    The stand-in when the cross-encoder cannot read the question's script (an English
    model and a Chinese question): a copied or lightly reworded answer passes, an
    answer made of words the passage lacks does not. It cannot tell whether passages
    hold an answer at all (retrieval already chose the passages sharing the question's
    words), so it never refuses on relevance.
    """

    name = "lexical"

    def __init__(self, support_threshold: float = 0.5) -> None:
        self.support_threshold = support_threshold
        self.relevance_threshold = float("-inf")

    def scores(self, claim: str, passages: Sequence[str]) -> np.ndarray:
        units = _units(claim)
        if not units:
            return np.ones(len(passages))
        return _found_share(units, numbers(claim), passages)

    def answer_scores(self, question: str, answer: str, passages: Sequence[str]) -> np.ndarray:
        """The share of the answer's own units found in the passage: the question's units
        are what retrieval matched, so counting them beside the answer's would fail a
        copied span ("雨生百谷" scored 0.33 beside its question) and pass a made-up one
        that reuses them. Half its units is still the bar: "第四个节气" passes where a
        passage has "四个" (a number the passage lacks, written in Han numerals, is not
        caught as digits are)."""
        units = _units(answer) - _units(question)
        if not units:
            return self.scores(answer, passages)
        return _found_share(units, numbers(answer) - numbers(question), passages)


def _found_share(units: set[str], claim_numbers: set[str], passages: Sequence[str]) -> np.ndarray:
    """Per passage, the share of `units` it holds; 0 when it lacks one of the numbers."""
    return np.array(
        [
            len(units & _units(p)) / len(units) if numbers_in(claim_numbers, p) else 0.0
            for p in passages
        ]
    )


def judge_for(judge: Judge, text: str) -> Judge:
    """`judge`, or the lexical judge when `judge` cannot read `text`'s script."""
    check = getattr(judge, "reads", None)
    if check is None or check(text):
        return judge
    return LexicalJudge()


_ENTAIL_SYSTEM = "You check facts. Reply with one word: yes or no."
_ENTAIL_USER = (
    "Passage: {passage}\n\nStatement: {claim}\n\n"
    "Does the passage state or directly imply the statement? Reply yes or no."
)


class LMJudge(Judge):
    """The language model asked whether the passage supports the claim: the score is
    log p(yes) - log p(no) of its first reply token."""

    name = "lm"

    def __init__(
        self,
        lm: LanguageModel | None = None,
        model: str | None = None,
        support_threshold: float = 0.0,
        relevance_threshold: float = 0.0,
        max_passage_chars: int = 1200,
    ) -> None:
        if lm is None:
            from mmrag.models.make_lm import make_lm

            lm = make_lm(model)
        self.lm = lm
        self.support_threshold = support_threshold
        self.relevance_threshold = relevance_threshold
        self.max_passage_chars = max_passage_chars

    def scores(self, claim: str, passages: Sequence[str]) -> np.ndarray:
        out = []
        for passage in passages:
            text = " ".join(passage.split())[: self.max_passage_chars]
            messages = [
                {"role": "system", "content": _ENTAIL_SYSTEM},
                {"role": "user", "content": _ENTAIL_USER.format(passage=text, claim=claim)},
            ]
            lp = self.lm.next_token_logprobs(messages, ["yes", "no", "Yes", "No"])
            yes = np.logaddexp(lp["yes"], lp["Yes"])
            no = np.logaddexp(lp["no"], lp["No"])
            out.append(float(yes - no))
        return np.asarray(out, dtype=np.float64)


JUDGES: Registry[Judge] = Registry(
    "grounding judge",
    {
        "cross-encoder": "mmrag.generate.grounding:CrossEncoderJudge",
        "lm": "mmrag.generate.grounding:LMJudge",
        "lexical": "mmrag.generate.grounding:LexicalJudge",
    },
)


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str  # as written, markers included
    claim: str  # markers removed: what is checked
    citations: tuple[int, ...]


_LEADING_MARKERS = re.compile(r"^(\s*\[\d[^\]]*\])+")


def answer_sentences(text: str) -> list[Sentence]:
    """The answer's sentences with the passage numbers each cites.

    A marker written after the full stop ("... in 1440. [1]") belongs to the sentence
    before it, not to the next one.
    """
    pieces = [text[a:b] for a, b in split_sentences(text)]
    merged: list[str] = []
    for piece in pieces:
        lead = _LEADING_MARKERS.match(piece)
        if lead and merged:
            merged[-1] += lead.group(0)
            piece = piece[lead.end() :]
        if piece.strip():
            merged.append(piece.strip())
        elif lead and not merged:
            merged.append(lead.group(0).strip())
    out = []
    for sentence in merged:
        numbers: list[int] = []
        for m in MARKER.finditer(sentence):
            numbers += [n for n in marker_numbers(m.group(1)) if n not in numbers]
        claim = " ".join(MARKER.sub("", sentence).split())
        if any(ch.isalnum() for ch in claim):  # a stray "[1]." claims nothing
            tidy = _recite_all(sentence, numbers) if numbers else sentence
            out.append(Sentence(tidy, claim, tuple(numbers)))
    return out


def join_sentences(sentences: Sequence[str]) -> str:
    """Sentences back into one text: a space after Latin punctuation, none after CJK."""
    out = ""
    for s in sentences:
        if out and not out.endswith(("。", "！", "？", "；")):
            out += " "
        out += s
    return out


# A claim of at most this many content words is a fragment ("October 1973"), not a
# statement: it is checked as the answer to the question, not on its own.
FRAGMENT_WORDS = 6
# Answers to yes/no questions, which no passage contains word for word.
_YES_NO = frozenset({"yes", "no", "是", "否", "不是", "对", "不对"})
# The share of a fragment's words that its passage must contain. A short answer is
# copied from its passage (the prompt asks for that), so one the passage does not
# contain was made up or came from elsewhere; the cross-encoder, which reads relevance,
# would pass it when the question matches the passage.
FRAGMENT_OVERLAP = 0.5


# A question that offers its own answers ("tea or coffee?", "between EU law and national
# law, which ...", "茶还是咖啡？"): the answer repeats words of the question, and that is
# not an echo.
_CHOICE = re.compile(r"\bor\b|\bbetween\b.+\band\b|\bwhich of\b|还是|或者|或是", re.IGNORECASE)


_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_TENS = "thirty forty fifty sixty seventy eighty ninety".split()
# A model copies "seven" from the passage as "7" (and 七 as 7): one spelling for both.
NUMBER_WORDS: dict[str, str] = {
    **{w: str(i) for i, w in enumerate(_UNITS)},
    **{w: str(30 + 10 * i) for i, w in enumerate(_TENS)},
    **{c: str(i) for i, c in enumerate("零一二三四五六七八九十")},
}


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")


def _words(text: str) -> set[str]:
    """Content words as the fragment check compares them: numbers spelled one way
    ("seven" as 7, "1,440" as 1440)."""
    return {NUMBER_WORDS.get(w, w) for w in tokens(_THOUSANDS.sub("", text), short=True)}


def is_fragment(claim: str) -> bool:
    return len(tokens(claim)) <= FRAGMENT_WORDS and not claim.rstrip(".!?。！？").endswith(":")


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers written in digits, thousands commas dropped: "1,440" is 1440."""
    return {n.replace(",", "") for n in _NUMBER.findall(_THOUSANDS.sub("", text))}


def numbers_in(claim_numbers: set[str], passage: str) -> bool:
    """Every number of the claim is in the passage, in digits or words ("7", "seven"):
    a date or count the passage does not hold is wrong however many other words
    match ("1998年5月" against 2016年11月). Only digits count on the claim's side:
    "one" is as often a pronoun."""
    if not claim_numbers:
        return True
    spelled = {NUMBER_WORDS[w] for w in tokens(passage, short=True) if w in NUMBER_WORDS}
    return claim_numbers <= numbers(passage) | spelled


def _fragment_in(fragment_words: set[str], passage: str, claim_numbers: set[str]) -> bool:
    if not numbers_in(claim_numbers, passage):
        return False
    if not fragment_words:
        return True
    inside = fragment_words & _words(passage)
    return len(inside) / len(fragment_words) >= FRAGMENT_OVERLAP


def claim_scores(
    claim: str, passages: Sequence[str], judge: Judge, question: str = ""
) -> np.ndarray:
    """The judge's score of each passage for one answer sentence.

    A fragment is scored as an answer to the question (`Judge.answer_scores`), and
    against a passage that does not contain its words it scores -inf: see
    FRAGMENT_OVERLAP. So does a fragment that only
    repeats the question ("谷雨是第几个节气？" -> "谷雨"): the passage that matches the
    question would pass it, yet it answers nothing. Choice questions are exempt.
    """
    if not passages:
        return np.zeros(0)
    if not (question and is_fragment(claim)):
        return judge.scores(claim, list(passages))
    scores = np.asarray(judge.answer_scores(question, claim, list(passages)), dtype=np.float64)
    bare = " ".join(claim.lower().rstrip(".!?。！？").split())
    if bare in _YES_NO:
        return scores
    if repeats_question(claim, question):
        return np.full(len(passages), -np.inf)
    words = _words(claim) - _words(question)
    claim_numbers = numbers(claim) - numbers(question)
    inside = np.array([_fragment_in(words, p, claim_numbers) for p in passages])
    return np.where(inside, scores, -np.inf)


def repeats_question(claim: str, question: str) -> bool:
    """The claim's words are all words of the question (and it is no choice between
    options the question offers)."""
    return not (_words(claim) - _words(question)) and not _CHOICE.search(question)


def check_support(
    text: str,
    passages: Sequence[str],
    judge: Judge,
    inferred: set[int] | frozenset[int] = frozenset(),
    question: str = "",
) -> list[SentenceSupport]:
    """Each sentence of `text` and whether a passage of the context supports it.

    Every sentence is scored against every passage. A sentence that its cited passage
    does not support but another passage does is re-cited to that passage, flagged as
    inferred (small models often cite the wrong number for a right fact); an uncited
    sentence gets the passage that supports it, also inferred, or stays unsupported.
    `inferred` are citation numbers the model did not write itself. With the
    `question`, short answers are checked as answers to it (`claim_scores`).
    """
    out = []
    for s in answer_sentences(text):
        cited = [n for n in s.citations if 1 <= n <= len(passages)]
        scores = claim_scores(s.claim, passages, judge, question)
        best_cited = max((float(scores[n - 1]) for n in cited), default=float("-inf"))
        if best_cited >= judge.support_threshold:
            is_inferred = all(n in inferred for n in cited)
            out.append(
                SentenceSupport(s.text, tuple(cited), True, round(best_cited, 4), is_inferred)
            )
            continue
        best = int(np.argmax(scores)) if len(scores) else -1
        if best >= 0 and scores[best] >= judge.support_threshold:
            text_recited = _recite(s.text, best + 1)
            out.append(
                SentenceSupport(
                    text_recited, (best + 1,), True, round(float(scores[best]), 4), True
                )
            )
            continue
        shown = round(best_cited, 4) if cited and np.isfinite(best_cited) else None
        out.append(SentenceSupport(s.text, tuple(cited), False, shown, False))
    return out


def _recite(sentence: str, number: int) -> str:
    """The sentence with its markers replaced by one marker for `number`."""
    return _recite_all(sentence, [number])


def _recite_all(sentence: str, numbers: Sequence[int]) -> str:
    """The sentence with one marker per cited number, before its final punctuation
    ("... in 1440 [1][2]."): models write markers twice, or after the full stop."""
    body = " ".join(MARKER.sub("", sentence).split())
    markers = "".join(f"[{n}]" for n in numbers)
    if body and body[-1] in ".!?。！？":
        space = "" if body[-1] in "。！？" else " "
        return f"{body[:-1]}{space}{markers}{body[-1]}"
    return f"{body} {markers}"


def relevance(question: str, passages: Sequence[str], judge: Judge) -> float:
    """The best score of any passage for the question itself (-inf with no passages)."""
    if not passages:
        return float("-inf")
    return float(judge.scores(question, passages).max())


def make_judge(
    spec: str | Judge | None, lm: LanguageModel | None = None, **params: object
) -> Judge | None:
    """A judge by registry name ("cross-encoder", "lm"), or None for no checking."""
    if spec is None or isinstance(spec, Judge):
        return spec
    if spec in {"none", "off", ""}:
        return None
    if spec == "lm":
        return LMJudge(lm=lm, **params)  # type: ignore[arg-type]
    try:
        return JUDGES.create(spec, **params)
    except ConfigError:
        raise
