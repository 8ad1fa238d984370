"""Abstractive refiner: a short question-focused summary by a language model, with citations.

The model sees the hits' sentences numbered [1], [2], ... (cut first by the extractive
refiner when they would not fit its window) and writes a few sentences that answer the
question, each followed by the numbers of the sentences it rests on. Each summary
sentence is attached to the hit its citations point to, and that hit's `kept` spans are
the cited source sentences, so the summary still cites its sources. Citations naming no
sentence are dropped (and reported); when the reply is unusable the refiner falls back
to the extractive selection and says so.
"""

from __future__ import annotations

import re
from functools import cached_property

from mmrag.models.causal_lm import DEFAULT_LM
from mmrag.models.lm import LanguageModel
from mmrag.refine.base import Budget, Selection, TextRefiner, TokenCounter
from mmrag.refine.extractive import ExtractiveRefiner
from mmrag.refine.sentences import is_cjk, split_sentences
from mmrag.types import Query

SYSTEM = "You summarise documents for a question. Use only the numbered sentences given."
PROMPT = (
    "Sentences:\n{sentences}\n\nQuestion: {question}\n\n"
    "Write at most {words} words with the facts from these sentences that answer the "
    "question. After each fact put the number of the sentence it comes from, like [2]. "
    "Copy the words of the sentences; do not add facts."
)
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+")


def content_words(text: str) -> set[str]:
    """Lower-cased words, with each CJK character a word of its own (Chinese has no spaces)."""
    out: set[str] = set()
    for word in _WORD.findall(text.lower()):
        out.update(word) if is_cjk(word[0]) else out.add(word)
    return out


def supporting_sentence(
    text: str, sources: list[set[str]], question: set[str], min_overlap: float = 0.75
) -> int | None:
    """The source sentence holding most of `text`'s words (question words not counted),
    or None when none holds `min_overlap` of them: the claim is then unsupported."""
    words = content_words(text) - question
    if not words or not sources:
        return None
    overlap = [len(words & s) / len(words) for s in sources]
    best = max(range(len(sources)), key=overlap.__getitem__)
    return best if overlap[best] >= min_overlap else None


def parse_summary(reply: str, n_sentences: int) -> tuple[list[tuple[str, list[int]]], int]:
    """(sentence text without markers, cited 0-based sentence indices) pairs, and how many
    citations named no sentence."""
    out: list[tuple[str, list[int]]] = []
    invalid = 0
    for a, b in split_sentences(reply):
        piece = reply[a:b]
        cited: list[int] = []
        for match in _CITATION.finditer(piece):
            for number in re.split(r"\s*,\s*", match.group(1)):
                index = int(number) - 1
                if 0 <= index < n_sentences:
                    cited.append(index)
                else:
                    invalid += 1
        text = re.sub(r"\s+", " ", _CITATION.sub("", piece)).strip()
        text = re.sub(r"\s+([.,;:!?。])", r"\1", text)
        if text:
            out.append((text, list(dict.fromkeys(cited))))
    return out, invalid


class AbstractiveRefiner(TextRefiner):
    """A question-focused summary by a `LanguageModel` (the local SmolLM2 by default)."""

    name = "abstractive"

    def __init__(
        self,
        lm: LanguageModel | None = None,
        model: str = DEFAULT_LM,
        max_input_tokens: int = 1024,
        instruction: str = "",
    ) -> None:
        super().__init__(instruction)
        if max_input_tokens < 64:
            raise ValueError("max_input_tokens must be at least 64")
        self._lm = lm
        self.model = model
        self.max_input_tokens = max_input_tokens
        self._extractive = ExtractiveRefiner(tokenizer_model=model)

    @cached_property
    def lm(self) -> LanguageModel:
        if self._lm is not None:
            return self._lm
        from mmrag.models.local_lm import LocalLM

        return LocalLM(self.model)

    def counter(self) -> TokenCounter:
        return self._extractive.counter()

    def select(
        self, query: Query, texts: list[str], tokens: list[int], budget: Budget
    ) -> Selection:
        warnings: list[str] = []
        if budget.passage_tokens_in > self.max_input_tokens:
            # Too long for the model: summarise the extractive selection instead.
            cut = Budget(budget.passage_tokens_in, budget.question_tokens, 0, self.max_input_tokens)
            shown = self._extractive.select(query, texts, tokens, cut).spans
            warnings.append(
                f"{budget.passage_tokens_in} passage tokens exceed the model input of "
                f"{self.max_input_tokens}; summarised the extractive selection"
            )
        else:
            shown = [split_sentences(t) for t in texts]
        numbered = [(i, span) for i, spans in enumerate(shown) for span in spans]
        listing = "\n".join(f"[{n + 1}] {texts[i][a:b]}" for n, (i, (a, b)) in enumerate(numbered))
        words = max(5, int(budget.target * 0.7))  # about 1.4 tokens per English word
        prompt = PROMPT.format(sentences=listing, question=query.text, words=words)
        calls = self.lm.usage.calls
        reply = self.lm.chat(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            max_tokens=max(budget.target, 8),
        ).text
        summary, invalid = parse_summary(reply, len(numbered))
        if invalid:
            warnings.append(f"{invalid} citations in the summary named no sentence; dropped")
        # A small model often forgets the markers or invents facts: an uncited sentence
        # is cited to the source sentence holding most of its words, or dropped.
        sources = [content_words(texts[i][a:b]) for i, (a, b) in numbered]
        asked = content_words(query.text)
        spans: list[list[tuple[int, int]]] = [[] for _ in texts]
        pieces: list[list[str]] = [[] for _ in texts]
        attributed = unsupported = 0
        for text, cited in summary:
            if not cited:
                best = supporting_sentence(text, sources, asked)
                if best is None:
                    unsupported += 1
                    continue
                cited, attributed = [best], attributed + 1
            owner = numbered[cited[0]][0]
            pieces[owner].append(text)
            spans[owner].extend(numbered[c][1] for c in cited if numbered[c][0] == owner)
        if unsupported:
            warnings.append(f"{unsupported} summary sentences matched no source sentence; dropped")
        if not any(pieces):
            warnings.append("the model's summary cited no sentence; used the extractive selection")
            fallback = self._extractive.select(query, texts, tokens, budget)
            return Selection(
                fallback.spans,
                model_calls=self.lm.usage.calls - calls,
                warnings=warnings + fallback.warnings,
                extra={"summary": reply, "fallback": "extractive"},
            )
        passages: list[str | None] = [" ".join(p) if p else None for p in pieces]
        return Selection(
            spans,
            passages=passages,
            model_calls=self.lm.usage.calls - calls,
            warnings=warnings,
            extra={"summary": reply, "attributed": attributed, "unsupported": unsupported},
        )
