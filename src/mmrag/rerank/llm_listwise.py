"""LLM listwise reranking (RankGPT style): the model writes a permutation of a window.

A window of `window` passages slides from the bottom of the list to the top in steps
of `step` (Sun et al., 2023), so good passages found low in the list bubble up. The
reply is parsed robustly: identifiers that are unknown or repeated are ignored and
the ones the model left out keep their relative order after the ones it ranked, so a
bad reply never loses or duplicates a passage; a reply with no usable identifier (or
a failed call) leaves its window as it was, and the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, ModelError
from mmrag.models.lm import Message
from mmrag.rerank.base import scores_from_order
from mmrag.rerank.llm_base import LLMReranker, counted
from mmrag.types import Hit, Query, StageReport

SYSTEM = "You are a search assistant that ranks passages by how well they answer a query."
INTRO = (
    "Below are {n} passages, each with a numeric identifier in brackets. "
    "Rank them by relevance to the query: {query}"
)
OUTRO = (
    "Query: {query}\n"
    "List all {n} identifiers from most to least relevant, in the form [2] > [1] > [3]. "
    "Reply with the ranking only."
)
_NUMBER = re.compile(r"\d+")


def parse_permutation(text: str, n: int) -> tuple[list[int], dict[str, int]]:
    """A complete permutation of range(n) from a reply naming identifiers 1..n.

    Returns the permutation and counts of what was wrong with the reply: `unknown`
    identifiers, `repeated` ones and `missing` ones (appended in their input order).
    """
    order: list[int] = []
    seen: set[int] = set()
    issues = {"unknown": 0, "repeated": 0, "missing": 0}
    for match in _NUMBER.finditer(text):
        ident = int(match.group())
        if not 1 <= ident <= n:
            issues["unknown"] += 1
        elif ident - 1 in seen:
            issues["repeated"] += 1
        else:
            seen.add(ident - 1)
            order.append(ident - 1)
    missing = [i for i in range(n) if i not in seen]
    issues["missing"] = len(missing)
    return order + missing, issues


WindowRanker = Callable[[list[int]], list[int] | None]


def sliding_order(n: int, window: int, step: int, rank_window: WindowRanker) -> list[int]:
    """Candidate indices after ranking windows from the bottom of the list to the top.

    `rank_window` gets the candidate indices in one window, in the current order, and
    returns them re-ordered (a permutation of its input), or None to leave them.
    """
    if window < 2 or not 1 <= step <= window:
        raise ConfigError(f"need window >= 2 and 1 <= step <= window, got {window}, {step}")
    order = list(range(n))
    end = n
    while True:
        start = max(0, end - window)
        current = order[start:end]
        ranked = rank_window(current)
        if ranked is not None:
            if sorted(ranked) != sorted(current):
                raise ValueError("a window ranking must be a permutation of its window")
            order[start:end] = ranked
        if start == 0:
            return order
        end -= step


class ListwiseLLMReranker(LLMReranker):
    """RankGPT-style permutation generation over a sliding window."""

    name = "llm-listwise"

    def __init__(
        self,
        lm: Any = None,
        *,
        window: int = 20,
        step: int = 10,
        max_tokens: int | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("max_passage_words", 80)
        super().__init__(lm, **options)
        if window < 2 or not 1 <= step <= window:
            raise ConfigError(f"need window >= 2 and 1 <= step <= window, got {window}, {step}")
        self.window, self.step = window, step
        # "[12] > " is about 6 tokens; the margin lets a chatty model finish its list.
        self.max_tokens = max_tokens or 6 * window + 16

    def messages(self, query: str, passages: list[str]) -> list[Message]:
        body = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages, start=1))
        user = "\n\n".join(
            [
                INTRO.format(n=len(passages), query=query),
                body,
                OUTRO.format(n=len(passages), query=query),
            ]
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        texts = self.passages([h.text for h in hits], report)
        issues = {"unknown": 0, "repeated": 0, "missing": 0, "unparsed_windows": 0}

        def rank_window(ids: list[int]) -> list[int] | None:
            try:
                reply = self.lm.chat(
                    self.messages(query.text, [texts[i] for i in ids]), self.max_tokens
                )
            except (ModelError, RuntimeError, ValueError, TimeoutError) as exc:
                report.errors.append(f"window {ids[0]}..: {exc}")
                return None
            perm, found = parse_permutation(reply.text, len(ids))
            for key, count in found.items():
                issues[key] += count
            if found["missing"] == len(ids):
                issues["unparsed_windows"] += 1
                report.errors.append(f"window {ids[0]}..: no identifiers in {reply.text[:80]!r}")
                return None
            return [ids[p] for p in perm]

        with counted(self.lm, report):
            order = sliding_order(len(hits), self.window, self.step, rank_window)
        report.extra["parse"] = issues
        return scores_from_order(order, len(hits))
