"""What every LLM reranker shares: the model (local or endpoint), cost accounting, passage cuts.

The model is either given (`lm=`) or built from the same options as the generator:
no `base_url` means the local SmolLM2, a `base_url` any OpenAI-compatible endpoint.
Calls and tokens are read as deltas of the model's `usage`, so one model can serve
several stages and each reports only its own cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mmrag.errors import ConfigError
from mmrag.models.lm import LanguageModel
from mmrag.rerank.base import Reranker
from mmrag.types import StageReport


def shorten(text: str, max_words: int) -> tuple[str, bool]:
    """The first `max_words` words of a passage (and whether it was cut): prompts hold
    many passages, so each gets a bounded share of the model's window."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words), False
    return " ".join(words[:max_words]) + " ...", True


@contextmanager
def counted(lm: LanguageModel, report: StageReport) -> Iterator[None]:
    """Add the model calls and tokens spent inside the block to `report`."""
    calls, tokens = lm.usage.calls, lm.usage.tokens
    try:
        yield
    finally:
        report.model_calls += lm.usage.calls - calls
        report.tokens += lm.usage.tokens - tokens


class LLMReranker(Reranker):
    """Base for rerankers driven by a `LanguageModel`."""

    def __init__(
        self,
        lm: LanguageModel | None = None,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        concurrency: int = 4,
        depth: int | None = None,
        max_passage_words: int = 100,
    ) -> None:
        super().__init__(depth)
        if max_passage_words < 1:
            raise ConfigError(f"max_passage_words must be positive, got {max_passage_words}")
        if lm is None:
            from mmrag.models.make_lm import make_lm

            lm = make_lm(model, base_url, api_key, api_key_env, timeout, retries, concurrency)
        self.lm = lm
        self.max_passage_words = max_passage_words

    def passages(self, texts: list[str], report: StageReport) -> list[str]:
        out, cut = [], 0
        for t in texts:
            short, was_cut = shorten(t, self.max_passage_words)
            out.append(short)
            cut += was_cut
        report.extra["truncated"] = report.extra.get("truncated", 0) + cut
        return out
