"""A generator over any `LanguageModel`: a packaged local model, or an OpenAI-compatible endpoint.

The model sees the numbered passages (`prompts.build_messages`); its reply is parsed
for `[n]` markers, markers naming no passage are dropped and reported, and, when
`attribute` is on, uncited sentences that copy a passage get that passage's marker.
A judge (grounding.py) then checks every sentence against the passages it cites, and
decides before generation whether the passages hold an answer at all: when no passage
is relevant to the question, the model says it cannot answer, or no sentence it wrote
is supported by a passage, the answer is "not found in the indexed material" with the
closest passages.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from mmrag.errors import ConfigError
from mmrag.generate.base import NOT_FOUND, Answer, Citation, Generator, SentenceSupport, StreamItem
from mmrag.generate.citations import attribute as attribute_citations
from mmrag.generate.citations import resolve
from mmrag.generate.grounding import (
    Judge,
    check_support,
    join_sentences,
    judge_for,
    make_judge,
    relevance,
)
from mmrag.generate.prompts import DEFAULT_STYLE, IMAGE_MODALITIES, STYLES, build_messages
from mmrag.models.lm import LanguageModel
from mmrag.models.make_lm import make_lm
from mmrag.types import Hit, Ranked, StageReport

log = logging.getLogger(__name__)

NO_CONTEXT = "No passage in the store matches this question, so there is nothing to answer from."
NOT_FOUND_TEXT = "Not found in the indexed material."
# The generator's default model, picked by bench/results/qa-sweep.json: on 40 SQuAD
# questions (open corpus, the short style, the same retrieved contexts for both) the
# 1.5B model gave F1 0.57 and its cited passage held the answer 89% of the time, the
# 0.5B model 0.23 and 56%. The 0.5B model and SmolLM2-135M stay as the faster options.
DEFAULT_GENERATOR_MODEL = "qwen2.5-coder-1.5b-instruct"
# How models say they cannot answer (the prompt asks for "NOT FOUND").
_REFUSAL = re.compile(
    r"^\W*(not\s+found|i\s+(do\s+not|don't|cannot|can't)\s+(know|find|answer)|"
    r"(the\s+)?passages?\s+(do(es)?\s+not|don't|doesn't)\s+"
    r"(contain|say|mention|state|provide|include|answer)|"
    r"there\s+is\s+no\s+(information|passage|mention)|no\s+(information|answer)\b|"
    r"未找到|没有找到|无法回答|不知道|文中没有|段落中没有)",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text.strip()))


class LLMGenerator(Generator):
    """Answer with citations from a chat model.

    `lm` overrides the model options; `multimodal` sends image passages as image parts
    (only useful with an endpoint that reads images). `style` picks the answer prompt
    ("short": the fewest words that answer; "sentence": one full sentence); `system` and
    `instruction` replace its parts.
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
        runtime: str | None = None,
        threads: int | None = None,
        batch_threads: int | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
        max_passage_chars: int = 1500,
        style: str = DEFAULT_STYLE,
        system: str | None = None,
        instruction: str | None = None,
        multimodal: bool = False,
        attribute: bool = True,
        verify: str | Judge | None = "cross-encoder",
        refuse_below: float | None = None,
        refuse: bool = True,
        refuse_unsupported: bool = True,
    ) -> None:
        if max_tokens <= 0:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
        if style not in STYLES:
            raise ConfigError(f"unknown answer style {style!r}; choose one of: {', '.join(STYLES)}")
        if lm is None and base_url is None:
            model = model or DEFAULT_GENERATOR_MODEL
        self.lm = lm or make_lm(
            model,
            base_url,
            api_key,
            api_key_env,
            timeout,
            retries,
            concurrency,
            runtime,
            threads,
            batch_threads=batch_threads,
        )
        self.judge = make_judge(verify, lm=self.lm)
        # None: the judge's own calibrated threshold
        self.refuse_below = refuse_below
        self.refuse = refuse
        self.refuse_unsupported = refuse_unsupported
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_passage_chars = max_passage_chars
        self.style = style
        chosen = STYLES[style]
        self.system = system if system is not None else chosen.system
        self.instruction = instruction if instruction is not None else chosen.instruction
        # custom prompts would contradict the style's worked examples
        custom = system is not None or instruction is not None
        self.examples = () if custom else chosen.examples
        self.explain = None if custom else chosen.explain
        self.several = None if custom else chosen.several
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
            examples=self.examples,
            explain=self.explain,
            several=self.several,
            max_passage_chars=self.max_passage_chars,
            images=self.multimodal,
            media=self.media,
        )

    def relevance_threshold(self) -> float | None:
        if not self.refuse or self.judge is None:
            return None
        return self.judge.relevance_threshold if self.refuse_below is None else self.refuse_below

    def check_question(self, question: str, limit: int) -> None:
        """A question that leaves no room for passages in the model's window is refused
        with one line, instead of being cut in the middle."""
        window = getattr(self.lm, "window", None)
        count = getattr(self.lm, "count_tokens", None)
        if window is None or count is None:
            return
        room = (window - limit) // 2
        n = count(question)
        if n > room:
            raise ConfigError(
                f"the question is {n} tokens long; the model's {window}-token window leaves "
                f"room for at most {room} beside the passages and the answer"
            )

    def stream(self, ranked: Ranked, max_tokens: int | None = None) -> Iterator[StreamItem]:
        hits = list(ranked.hits)
        report = StageReport(stage="generate", name=self.name, n_in=len(hits))
        limit = max_tokens or self.max_tokens
        self.check_question(ranked.query.text, limit)
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
        started = time.perf_counter()
        threshold = self.relevance_threshold()
        judge = judge_for(self.judge, ranked.query.text) if self.judge is not None else None
        if judge is not None and judge is not self.judge:
            # the judge cannot read the question's script: no relevance test to trust
            report.extra["judge"] = judge.name
            threshold = None
        if threshold is not None and judge is not None:
            best = relevance(ranked.query.text, [h.text for h in hits], judge)
            report.extra["relevance"] = round(best, 4)
            report.extra["relevance_threshold"] = threshold
            if best < threshold:  # no passage is about the question: do not let the model guess
                report.seconds = time.perf_counter() - started
                report.extra["refused_by"] = "relevance"
                yield NOT_FOUND_TEXT
                yield self.not_found(ranked, report)
                return
        usage = self.lm.usage
        calls0, prompt0, completion0 = usage.calls, usage.prompt_tokens, usage.completion_tokens
        pieces: list[str] = []
        first: float | None = None
        first_at = 0.0
        # The LanguageModel interface types content as str; multimodal parts pass through as lists.
        tokens = self.lm.stream(self.messages(ranked), limit, self.temperature)  # type: ignore[arg-type]
        try:
            for piece in tokens:
                if not piece:
                    continue
                if first is None:
                    first_at = time.perf_counter()
                    first = first_at - started
                pieces.append(piece)
                yield piece
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:  # a consumer that stops early stops the model too
                close()
        # decoding speed: the tokens after the first over the time after it (the first
        # token's wait is reading the prompt, reported as first_token_s)
        decode_seconds = time.perf_counter() - first_at if first is not None else 0.0
        completion = usage.completion_tokens - completion0
        report.model_calls = usage.calls - calls0
        report.tokens = (usage.prompt_tokens - prompt0) + completion
        report.extra.update(
            {
                "model": self.lm.name,
                "prompt_tokens": usage.prompt_tokens - prompt0,
                "completion_tokens": completion,
                "max_tokens": limit,
                "first_token_s": round(first, 4) if first is not None else None,
                "tokens_per_s": round((completion - 1) / decode_seconds, 2)
                if completion > 1 and decode_seconds > 0
                else None,
            }
        )
        finish = "length" if completion >= limit else "stop"
        raw = "".join(pieces)
        if self.refuse and is_refusal(raw):
            report.extra["refused_by"] = "model"
            report.seconds = time.perf_counter() - started
            yield self.not_found(ranked, report, raw)
            return
        answer = self.answer(ranked, raw, report, finish)
        report.seconds = time.perf_counter() - started
        yield answer

    def not_found(self, ranked: Ranked, report: StageReport, raw: str = "") -> Answer:
        """The answer that says the material does not hold one; the closest passages
        stay in its context for the reader."""
        if raw:
            report.extra["model_reply"] = raw.strip()[:300]
        report.n_out = 0
        return Answer(
            question=ranked.query.text,
            text=NOT_FOUND_TEXT,
            context=list(ranked.hits),
            reports=[*ranked.reports, report],
            finish_reason=NOT_FOUND,
        )

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
        text = resolved.text
        sentences = []
        if self.judge is not None and resolved.text:
            checked = time.perf_counter()
            judge = judge_for(self.judge, ranked.query.text)
            sentences = check_support(
                resolved.text,
                [h.text for h in hits],
                judge,
                resolved.inferred,
                question=ranked.query.text,
            )
            report.extra["verify_s"] = round(time.perf_counter() - checked, 4)
            report.extra["judge"] = judge.name
            # the checker may have moved a citation to the passage that holds the fact
            text = join_sentences([s.text for s in sentences])
            citations = _citations(sentences, hits, resolved.numbers, resolved.inferred)
            if self.refuse and self.refuse_unsupported and not any(s.supported for s in sentences):
                # nothing the model wrote is backed by a passage: say so rather than
                # pass on a guess (the reply stays in the report)
                report.extra["refused_by"] = "unsupported"
                report.extra["grounding"] = Answer(
                    ranked.query.text, text, hits, sentences=sentences
                ).grounding()
                return self.not_found(ranked, report, raw)
        report.n_out = len(citations)
        answer = Answer(
            question=ranked.query.text,
            text=text,
            context=hits,
            citations=citations,
            dropped=resolved.dropped,
            reports=[*ranked.reports, report],
            finish_reason=finish_reason,
            sentences=sentences,
        )
        if sentences:
            report.extra["grounding"] = answer.grounding()
        return answer


def _citations(
    sentences: list[SentenceSupport], hits: list[Hit], written: list[int], inferred: set[int]
) -> list[Citation]:
    """Citations in order of first mention; inferred unless the model wrote the number."""
    out: list[Citation] = []
    seen: set[int] = set()
    for s in sentences:
        for n in s.citations:
            if n not in seen:
                seen.add(n)
                out.append(Citation(n, hits[n - 1], n not in written or n in inferred))
    return out
