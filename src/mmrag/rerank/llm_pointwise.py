"""LLM pointwise relevance (yes/no logit style, as in RankLLaMA-era pointwise prompting).

Each passage is judged alone: the score is log P("Yes") - log P("No") for the reply's
first token, one forward pass per passage and no generation. Local models score a
batch of passages per forward pass when they offer `next_token_logprobs_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrag.errors import ModelError
from mmrag.models.lm import Message
from mmrag.rerank.llm_base import LLMReranker, counted
from mmrag.types import Hit, Query, StageReport

SYSTEM = "You judge whether a passage answers a search query."
PROMPT = (
    "Passage: {passage}\n\nQuery: {query}\n\n"
    "Does the passage answer the query? Answer with Yes or No."
)
ANSWERS = ("Yes", "No")


class PointwiseLLMReranker(LLMReranker):
    name = "llm-pointwise"

    def __init__(self, lm: Any = None, *, batch_size: int = 8, **options: Any) -> None:
        super().__init__(lm, **options)
        self.batch_size = max(1, batch_size)

    def messages(self, query: str, passage: str) -> list[Message]:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT.format(passage=passage, query=query)},
        ]

    def _logprobs(self, conversations: Sequence[list[Message]]) -> list[dict[str, float]]:
        many = getattr(self.lm, "next_token_logprobs_many", None)
        if many is not None:  # a local model batches the forward passes
            return many(conversations, ANSWERS)
        return [self.lm.next_token_logprobs(c, ANSWERS) for c in conversations]

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        texts = self.passages([h.text for h in hits], report)
        conversations = [self.messages(query.text, t) for t in texts]
        scores = np.full(len(hits), np.nan)
        with counted(self.lm, report):
            for start in range(0, len(conversations), self.batch_size):
                part = conversations[start : start + self.batch_size]
                try:
                    values = self._logprobs(part)
                except (ModelError, RuntimeError, ValueError, TimeoutError) as exc:
                    report.errors.append(f"candidates {start}-{start + len(part) - 1}: {exc}")
                    continue
                for i, lp in enumerate(values):
                    yes, no = lp.get("Yes"), lp.get("No")
                    if yes is None or no is None or not np.isfinite([yes, no]).all():
                        report.errors.append(f"candidate {start + i}: no Yes/No logprobs")
                        continue
                    scores[start + i] = yes - no
        return scores
