"""A generator over any `LanguageModel`: local SmolLM2 by default, or an OpenAI-compatible endpoint.

The model sees the numbered passages (`prompts.build_messages`); its reply is parsed
for `[n]` markers, markers naming no passage are dropped and reported, and, when
`attribute` is on, uncited sentences that copy a passage get that passage's marker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from mmrag.errors import ConfigError
from mmrag.generate.base import Answer, Citation, Generator, StreamItem
from mmrag.generate.citations import attribute as attribute_citations
from mmrag.generate.citations import resolve
from mmrag.generate.prompts import IMAGE_MODALITIES, INSTRUCTION, SYSTEM, build_messages
from mmrag.models.lm import LanguageModel
from mmrag.types import Hit, Ranked, StageReport

NO_CONTEXT = "No passage in the store matches this question, so there is nothing to answer from."


def make_lm(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    api_key_env: str | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    concurrency: int = 4,
) -> LanguageModel:
    """The local model (no `base_url`) or an OpenAI-compatible endpoint."""
    if base_url is None:
        from mmrag.models.local_lm import LocalLM

        return LocalLM(model) if model else LocalLM()
    if not model:
        raise ConfigError("an OpenAI-compatible generator needs a model name")
    from mmrag.models.openai_lm import OpenAICompatibleLM

    key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
    return OpenAICompatibleLM(
        base_url=base_url,
        model=model,
        api_key=key,
        timeout=timeout,
        retries=retries,
        concurrency=concurrency,
    )


class LLMGenerator(Generator):
    """Answer with citations from a chat model.

    `lm` overrides the model options; `multimodal` sends image passages as image parts
    (only useful with an endpoint that reads images).
    """

    name = "llm"

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
        max_tokens: int = 128,
        temperature: float = 0.0,
        max_passage_chars: int = 1500,
        system: str = SYSTEM,
        instruction: str = INSTRUCTION,
        multimodal: bool = False,
        attribute: bool = True,
    ) -> None:
        if max_tokens <= 0:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
        self.lm = lm or make_lm(
            model, base_url, api_key, api_key_env, timeout, retries, concurrency
        )
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_passage_chars = max_passage_chars
        self.system = system
        self.instruction = instruction
        self.multimodal = multimodal
        self.attribute = attribute

    def readable(self, hit: Hit) -> bool:
        if hit.text.strip():
            return True
        return self.multimodal and hit.doc.modality in IMAGE_MODALITIES and bool(hit.doc.media)

    def messages(self, ranked: Ranked) -> list[dict[str, Any]]:
        return build_messages(
            ranked.query.text,
            ranked.hits,
            system=self.system,
            instruction=self.instruction,
            max_passage_chars=self.max_passage_chars,
            images=self.multimodal,
            media=self.media,
        )

    def stream(self, ranked: Ranked, max_tokens: int | None = None) -> Iterator[StreamItem]:
        hits = list(ranked.hits)
        report = StageReport(stage="generate", name=self.name, n_in=len(hits))
        limit = max_tokens or self.max_tokens
        if not hits:
            report.n_out = 0
            yield NO_CONTEXT
            yield Answer(
                ranked.query.text,
                NO_CONTEXT,
                [],
                reports=[*ranked.reports, report],
                finish_reason="no_context",
            )
            return
        usage = self.lm.usage
        calls0, prompt0, completion0 = usage.calls, usage.prompt_tokens, usage.completion_tokens
        pieces: list[str] = []
        started = time.perf_counter()
        first: float | None = None
        # The LanguageModel interface types content as str; multimodal parts pass through as lists.
        tokens = self.lm.stream(self.messages(ranked), limit, self.temperature)  # type: ignore[arg-type]
        try:
            for piece in tokens:
                if not piece:
                    continue
                if first is None:
                    first = time.perf_counter() - started
                pieces.append(piece)
                yield piece
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:  # a consumer that stops early stops the model too
                close()
        report.seconds = time.perf_counter() - started
        completion = usage.completion_tokens - completion0
        report.model_calls = usage.calls - calls0
        report.tokens = (usage.prompt_tokens - prompt0) + completion
        report.extra = {
            "model": self.lm.name,
            "prompt_tokens": usage.prompt_tokens - prompt0,
            "completion_tokens": completion,
            "max_tokens": limit,
            "first_token_s": round(first, 4) if first is not None else None,
            "tokens_per_s": round(completion / report.seconds, 2) if report.seconds > 0 else None,
        }
        finish = "length" if completion >= limit else "stop"
        yield self.answer(ranked, "".join(pieces), report, finish)

    def answer(self, ranked: Ranked, raw: str, report: StageReport, finish_reason: str) -> Answer:
        hits = list(ranked.hits)
        resolved = resolve(raw.strip(), len(hits))
        if self.attribute:
            attribute_citations(resolved, [h.text for h in hits], ranked.query.text)
        if resolved.dropped:
            report.errors.append(
                f"dropped citations naming no passage: {', '.join(map(str, resolved.dropped))}"
            )
        citations = [Citation(n, hits[n - 1], n in resolved.inferred) for n in resolved.numbers]
        report.n_out = len(citations)
        return Answer(
            question=ranked.query.text,
            text=resolved.text,
            context=hits,
            citations=citations,
            dropped=resolved.dropped,
            reports=[*ranked.reports, report],
            finish_reason=finish_reason,
        )
