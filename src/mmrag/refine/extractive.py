"""Extractive refiner: keep the sentences closest to the question, skipping near-duplicates.

Question-aware sentence selection in the style of CPC / RECOMP-extractive: each
sentence of every hit is embedded with the question, then maximal marginal relevance
(MMR) picks sentences greedily — relevance to the question minus similarity to what
is already picked — until the token budget is spent. Kept sentences are returned in
their original order so the context still reads as the source did.

Relevance is the embedding similarity, or (`relevance="cross-encoder"`) a cross-encoder
reading question and sentence together, which tells the sentence that answers from one
that only shares the topic: for "Who invented the printing press, and when?" the
embedding ranked "he adapted the screw press" above "around 1440, the goldsmith
Johannes Gutenberg began work on a system for printing with movable metal type".
A question in a script the cross-encoder cannot read falls back to the embedding.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from mmrag.models.causal_lm import DEFAULT_LM, load_tokenizer
from mmrag.refine.base import Budget, Selection, TextRefiner, TokenCounter
from mmrag.refine.sentences import split_sentences, word_spans
from mmrag.types import Query


def mmr_select(
    relevance: np.ndarray,
    similarity: np.ndarray,
    costs: np.ndarray,
    budget: int,
    diversity: float,
) -> list[int]:
    """Greedy MMR under a knapsack budget: indices picked, best first.

    `relevance` (n,) is each item's similarity to the query, `similarity` (n, n) between
    items, `costs` (n,) their token counts. An item that no longer fits is skipped and
    smaller ones are still tried, so the budget is filled.
    """
    n = len(relevance)
    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    redundancy = np.zeros(n, dtype=np.float32)
    left = budget
    while True:
        available &= costs <= left
        if not available.any():
            return picked
        gain = (1.0 - diversity) * relevance - diversity * redundancy
        best = int(np.argmax(np.where(available, gain, -np.inf)))
        picked.append(best)
        available[best] = False
        left -= int(costs[best])
        redundancy = np.maximum(redundancy, similarity[best])


def head_of(text: str, start: int, end: int, share: float) -> tuple[int, int]:
    """The first whole words of text[start:end] holding about `share` of its characters
    (at least one word): a cut never falls inside a word or a CJK character."""
    words = word_spans(text[start:end])
    if len(words) == 0:
        return start, end
    limit = max((end - start) * share, 1)
    fits = words[:, 1] <= limit
    last = int(np.flatnonzero(fits)[-1]) if fits.any() else 0
    return start, start + int(words[last, 1])


RELEVANCE = ("embedding", "cross-encoder")


class ExtractiveRefiner(TextRefiner):
    """Sentence selection by embedding similarity to the question plus MMR redundancy removal.

    `encoder` is a text-encoder registry name; the default Universal Sentence Encoder
    multilingual reads English and Chinese alike. Budgets are counted with the
    tokenizer of the causal LM `tokenizer_model` (the generator's, by default SmolLM2).
    `relevance`: "embedding" or "cross-encoder" (the ONNX `cross_encoder` model; its
    logits pass through a sigmoid to share the [0, 1] scale of the redundancy term).
    """

    name = "extractive"

    def __init__(
        self,
        encoder: str = "use-multilingual",
        diversity: float = 0.3,
        tokenizer_model: str = DEFAULT_LM,
        max_sentence_chars: int = 600,
        instruction: str = "",
        encoder_params: dict[str, Any] | None = None,
        relevance: str = "embedding",
        cross_encoder: str = "ms-marco-MiniLM-L-12-v2",
    ) -> None:
        super().__init__(instruction)
        if not 0.0 <= diversity < 1.0:
            raise ValueError("diversity must be in [0, 1)")
        if relevance not in RELEVANCE:
            raise ValueError(f"relevance must be one of {', '.join(RELEVANCE)}, got {relevance!r}")
        self.relevance = relevance
        self.cross_encoder_name = cross_encoder
        self.encoder_name = encoder
        self.encoder_params = dict(encoder_params or {})
        self.diversity = diversity
        self.tokenizer_model = tokenizer_model
        self.max_sentence_chars = max_sentence_chars
        self._counter: TokenCounter | None = None

    @cached_property
    def encoder(self) -> Any:
        from mmrag.models.text import load_text_encoder

        return load_text_encoder(self.encoder_name, **self.encoder_params)

    @cached_property
    def cross_encoder(self) -> Any:
        from mmrag.rerank.onnx_cross_encoder import OnnxCrossEncoderReranker

        return OnnxCrossEncoderReranker(self.cross_encoder_name)

    def sentence_relevance(
        self, question: str, sentences: list[str], vectors: np.ndarray
    ) -> np.ndarray:
        if self.relevance == "cross-encoder" and self.cross_encoder.reads(question):
            logits = np.asarray(self.cross_encoder.pair_scores(question, sentences))
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return vectors @ self.encoder.encode_queries([question or " "])[0]

    def counter(self) -> TokenCounter:
        # the tokenizer alone: the generator's weights are not needed to count its tokens
        if self._counter is None:
            self._counter = TokenCounter(load_tokenizer(self.tokenizer_model))
        return self._counter

    def select(
        self, query: Query, texts: list[str], tokens: list[int], budget: Budget
    ) -> Selection:
        owner: list[int] = []
        spans: list[tuple[int, int]] = []
        for i, text in enumerate(texts):
            for span in split_sentences(text, self.max_sentence_chars):
                owner.append(i)
                spans.append(span)
        sentences = [texts[i][a:b] for i, (a, b) in zip(owner, spans, strict=True)]
        kept: list[list[tuple[int, int]]] = [[] for _ in texts]
        if not sentences:
            return Selection(kept, warnings=["no sentences in the hits"])
        costs = np.asarray(self.counter().count_many(sentences), dtype=np.int64)
        vectors = self.encoder.encode(sentences)
        relevance = self.sentence_relevance(query.text, sentences, vectors)
        picked = mmr_select(relevance, vectors @ vectors.T, costs, budget.target, self.diversity)
        warnings = []
        if not picked:
            # Even the best sentence is over budget: keep its head rather than nothing.
            best = int(np.argmax(relevance))
            a, b = spans[best]
            spans[best] = head_of(texts[owner[best]], a, b, budget.target / max(costs[best], 1))
            picked = [best]
            warnings.append(
                f"the most relevant sentence ({costs[best]} tokens) exceeds the budget "
                f"({budget.target}); kept its first {spans[best][1] - a} characters"
            )
        for j in sorted(picked, key=lambda j: (owner[j], spans[j][0])):
            kept[owner[j]].append(spans[j])
        return Selection(
            kept,
            warnings=warnings,
            extra={"sentences_in": len(sentences), "sentences_kept": len(picked)},
        )
