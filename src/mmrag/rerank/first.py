"""FIRST: listwise reranking from the logits of the first generated identifier.

Passages in a window carry single-token identifiers (A, B, C, ...); one forward pass
gives the log-probability of each identifier as the reply's first token, and the
window is ranked by it (Reddy et al., 2024) instead of generating a permutation.
Windows slide from the bottom of the list to the top as in the listwise reranker.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, ModelError
from mmrag.models.lm import Message
from mmrag.rerank.base import scores_from_order
from mmrag.rerank.llm_base import LLMReranker, counted
from mmrag.rerank.llm_listwise import sliding_order
from mmrag.types import Hit, Query, StageReport

IDENTIFIERS = string.ascii_uppercase
SYSTEM = "You are a search assistant that finds the passage that best answers a query."
PROMPT = (
    "Query: {query}\n\n{passages}\n\n"
    "Which passage answers the query best? Reply with its letter only."
)


class FirstReranker(LLMReranker):
    name = "first"

    def __init__(self, lm: Any = None, *, window: int = 20, step: int = 10, **options: Any) -> None:
        options.setdefault("max_passage_words", 80)
        super().__init__(lm, **options)
        if not 2 <= window <= len(IDENTIFIERS):
            raise ConfigError(f"FIRST windows hold 2 to {len(IDENTIFIERS)} passages, not {window}")
        if not 1 <= step <= window:
            raise ConfigError(f"step must be between 1 and the window ({window}), got {step}")
        self.window, self.step = window, step

    def messages(self, query: str, passages: list[str]) -> list[Message]:
        body = "\n".join(f"[{IDENTIFIERS[i]}] {p}" for i, p in enumerate(passages))
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT.format(query=query, passages=body)},
        ]

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        texts = self.passages([h.text for h in hits], report)

        def rank_window(ids: list[int]) -> list[int] | None:
            letters = list(IDENTIFIERS[: len(ids)])
            try:
                logprobs = self.lm.next_token_logprobs(
                    self.messages(query.text, [texts[i] for i in ids]), letters
                )
            except (ModelError, RuntimeError, ValueError, TimeoutError) as exc:
                report.errors.append(f"window {ids[0]}..: {exc}")
                return None
            values = [logprobs.get(letter, float("nan")) for letter in letters]
            if not np.isfinite(values).any():
                report.errors.append(f"window {ids[0]}..: no identifier logprobs")
                return None
            # Stable sort on -logprob: ties and missing values keep the window's order.
            keyed = [(-v if np.isfinite(v) else np.inf, pos) for pos, v in enumerate(values)]
            return [ids[pos] for _, pos in sorted(keyed)]

        with counted(self.lm, report):
            order = sliding_order(len(hits), self.window, self.step, rank_window)
        return scores_from_order(order, len(hits))
