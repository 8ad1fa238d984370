"""LLM pairwise ranking prompting (PRP, Qin et al., 2024).

The model is asked which of two passages answers the query better, in both orders,
and the two answers are averaged so a preference for the first (or second) slot
cancels out. `method="allpairs"` compares every pair and scores a passage by its summed
preferences (n(n-1) prompts); `method="sliding"` runs `passes` bubble-sort passes from
the bottom of the list up, which settles the top `passes` positions with about
2 * passes * n prompts. A comparison that fails counts as a tie (all pairs) or as
no swap (sliding), and is reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, ModelError
from mmrag.models.lm import Message
from mmrag.rerank.base import scores_from_order
from mmrag.rerank.llm_base import LLMReranker, counted
from mmrag.types import Hit, Query, StageReport

SYSTEM = "You compare two passages for a search query."
PROMPT = (
    'Query: "{query}"\n\nPassage A: "{a}"\n\nPassage B: "{b}"\n\n'
    "Which passage is more relevant to the query? Answer with A or B."
)
SLOTS = ("A", "B")


class PairwiseLLMReranker(LLMReranker):
    name = "llm-pairwise"

    def __init__(
        self,
        lm: Any = None,
        *,
        method: str = "sliding",
        passes: int = 10,
        batch_size: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(lm, **options)
        if method not in ("allpairs", "sliding"):
            raise ConfigError(f"unknown PRP method {method!r}; use allpairs or sliding")
        if passes < 1:
            raise ConfigError(f"passes must be at least 1, got {passes}")
        self.method, self.passes, self.batch_size = method, passes, max(1, batch_size)

    def messages(self, query: str, a: str, b: str) -> list[Message]:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT.format(query=query, a=a, b=b)},
        ]

    def _slot_probabilities(self, conversations: Sequence[list[Message]]) -> list[float | None]:
        """P(answer is A) per conversation, normalised over {A, B}; None where it failed."""
        many = getattr(self.lm, "next_token_logprobs_many", None)
        out: list[float | None] = []
        for start in range(0, len(conversations), self.batch_size):
            part = conversations[start : start + self.batch_size]
            try:
                values = (
                    many(part, SLOTS)
                    if many
                    else [self.lm.next_token_logprobs(c, SLOTS) for c in part]
                )
            except (ModelError, RuntimeError, ValueError, TimeoutError):
                out.extend([None] * len(part))
                continue
            for lp in values:
                a, b = lp.get("A"), lp.get("B")
                if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                    out.append(None)
                else:
                    out.append(1.0 / (1.0 + math.exp(b - a)))
        return out

    def preferences(
        self, query: str, texts: list[str], pairs: list[tuple[int, int]], report: StageReport
    ) -> list[float | None]:
        """P(first passage of each pair beats the second), averaged over both orders."""
        conversations = []
        for i, j in pairs:
            conversations.append(self.messages(query, texts[i], texts[j]))
            conversations.append(self.messages(query, texts[j], texts[i]))
        probs = self._slot_probabilities(conversations)
        out: list[float | None] = []
        for n, (i, j) in enumerate(pairs):
            forward, backward = probs[2 * n], probs[2 * n + 1]
            if forward is None or backward is None:
                report.errors.append(f"comparison {i} vs {j} failed")
                out.append(None)
            else:
                out.append((forward + (1.0 - backward)) / 2.0)
        return out

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        texts = self.passages([h.text for h in hits], report)
        n = len(texts)
        if n == 1:
            return np.zeros(1)
        with counted(self.lm, report):
            if self.method == "allpairs":
                pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
                scores = np.zeros(n)
                for (i, j), p in zip(
                    pairs, self.preferences(query.text, texts, pairs, report), strict=True
                ):
                    p = 0.5 if p is None else p
                    scores[i] += p
                    scores[j] += 1.0 - p
                # Ties (e.g. every comparison failed) keep the input order.
                return scores - np.arange(n) * 1e-9
            order = list(range(n))
            for top in range(min(self.passes, n - 1)):
                for pos in range(n - 2, top - 1, -1):
                    upper, lower = order[pos], order[pos + 1]
                    (p,) = self.preferences(query.text, texts, [(lower, upper)], report)
                    if p is not None and p > 0.5:
                        order[pos], order[pos + 1] = lower, upper
        return scores_from_order(order, n)
