"""retrieve -> rerank -> refine -> generate, as plain composition declared in a TOML file.

    [retrieve]              # RETRIEVERS name (default: multimodal, hybrid or bm25 by store)
    name = "hybrid"
    k = 20
    [retrieve.params]       # passed to the retriever's constructor
    fusion = "rrf"

    [rerank]                # optional: RERANKERS name, keep k
    name = "cross-encoder"
    k = 5

    [refine]                # optional: REFINERS name, token budget
    name = "extractive"
    budget = 512

    [generate]              # optional: GENERATORS name
    name = "llm"
    [generate.params]
    max_tokens = 128

A stage missing from the file is skipped. Rerankers and refiners are both `Stage`s (a
`Ranked` and its `Limits` in, a `Ranked` out), so the pipeline is a retriever, a list
of `Step`s and a generator; each part is also callable alone (`retrieve`, `postprocess`,
`generate`). `ask` and `stream` record, per stage, the
wall time, candidates in and out, model calls, tokens and budget in `Answer.stages`.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, MissingDependency, MMRagError, ModelUnavailable
from mmrag.generate import GENERATORS, Answer, Generator
from mmrag.index.base import Store
from mmrag.index.media import media_resolver
from mmrag.registry import Registry
from mmrag.retrieve import RETRIEVERS, Retriever
from mmrag.stage import Limits, Stage
from mmrag.types import Query, Ranked, StageReport

log = logging.getLogger(__name__)

STAGES = ("retrieve", "rerank", "refine", "generate")
_STAGE_KEYS = {
    "retrieve": {"name", "k", "params"},
    "rerank": {"name", "k", "params"},
    "refine": {"name", "budget", "params"},
    "generate": {"name", "params"},
}
# Retrieve wide, let the cross-encoder pick the three best, keep their sentences closest
# to the question, answer from those: a small local model answers worse from a long
# context, and reading the prompt is most of its time (bench/results/generators.json).
# The budget of 200 tokens was chosen on 60 SQuAD questions that bench/qa.py never asks
# (bench/results/qa-sweep-budget.json): against 300, answering took 3.4 s instead of
# 4.5 s at the median (Qwen2.5-1.5B reads about 100 prompt tokens a second on two
# cores), for F1 0.48 instead of 0.52 and the same refusals. Five passages with their
# sentences ranked by the cross-encoder (refine params relevance="cross-encoder") scored
# F1 0.52 on those questions and 0.523 on bench/qa.py's 200 (bench/results/
# qa-sweep-rerank.json), but refused 0.69 of absent answers (target 0.70) and broke a
# demo answer: a sentence scored alone loses its context ("Instead it relies on a
# starter" after "Sourdough rises without commercial yeast"), so it is not the default.
DEFAULT_CONFIG: dict[str, Any] = {
    "retrieve": {"k": 20},
    "rerank": {"name": "cross-encoder-onnx", "k": 3},
    "refine": {"name": "extractive", "budget": 200},
    "generate": {"name": "llm", "params": {"max_tokens": 96, "max_passage_chars": 1500}},
}

# What flows out of `Pipeline.stream`: the refined context, text pieces, then the Answer.
PipelineItem = Ranked | str | Answer


class StageFailed(MMRagError):
    """A stage after retrieval failed; carries what had been retrieved so far."""

    def __init__(self, stage: str, name: str, cause: BaseException, ranked: Ranked) -> None:
        super().__init__(f"{stage} stage {name!r} failed: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.name = name
        self.ranked = ranked


@dataclass(slots=True)
class StageConfig:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    k: int | None = None
    budget: int | None = None


def parse_config(config: Mapping[str, Any]) -> dict[str, StageConfig]:
    """Validate a pipeline config (as read from TOML) into stage settings."""
    unknown = set(config) - set(STAGES) - {"store"}
    if unknown:
        raise ConfigError(f"unknown pipeline sections {sorted(unknown)}; use {list(STAGES)}")
    out: dict[str, StageConfig] = {}
    for stage in STAGES:
        section = config.get(stage)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise ConfigError(f"[{stage}] must be a table")
        extra = set(section) - _STAGE_KEYS[stage]
        if extra:
            raise ConfigError(
                f"[{stage}] has unknown keys {sorted(extra)}; "
                f"stage parameters go in [{stage}.params]"
            )
        params = section.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(f"[{stage}.params] must be a table")
        name = section.get("name", "")
        if stage != "retrieve" and not name:
            raise ConfigError(f"[{stage}] needs a name")
        for key in ("k", "budget"):
            value = section.get(key)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"[{stage}] {key} must be a positive integer, got {value!r}")
        out[stage] = StageConfig(
            name=str(name), params=dict(params), k=section.get("k"), budget=section.get("budget")
        )
    return out


def default_retriever_name(store: Store) -> str:
    """What to search with when the config names no retriever: every modality the store has."""
    fields = store.fields()
    return "multimodal" if "image" in fields else "hybrid" if "text" in fields else "bm25"


# The stages between retrieval and generation, in the order a config runs them, and
# what each section's `k` / `budget` limits.
_STEP_SECTIONS = ("rerank", "refine")


def _step_registry(section: str) -> Registry[Any]:
    if section == "rerank":
        from mmrag.rerank import RERANKERS

        return RERANKERS
    from mmrag.refine import REFINERS

    return REFINERS


def _step_limits(section: str, config: StageConfig) -> Limits:
    if section == "rerank":
        return Limits(k=config.k or 5)
    return Limits(tokens=config.budget or 512)


@dataclass(slots=True)
class Step:
    """A stage between retrieval and generation, the limits it runs under, and the name
    it was configured by (for reports; default: the stage's own)."""

    stage: Stage
    limits: Limits = field(default_factory=Limits)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.stage.name


class Pipeline:
    """Plain composition: a retriever, then each step in order, then an optional generator."""

    def __init__(
        self,
        retriever: Retriever,
        steps: Sequence[Step] = (),
        generator: Generator | None = None,
        *,
        k: int = 20,
        retriever_name: str | None = None,
        generator_name: str | None = None,
    ) -> None:
        self.retriever = retriever
        self.steps = list(steps)
        self.generator = generator
        self.k = k
        self.retriever_name = retriever_name or getattr(retriever, "name", "retriever")
        self.generator_name = generator_name or getattr(generator, "name", "generator")
        # what went wrong while building (a generator that could not load), for the user
        self.warnings: list[str] = []

    @property
    def names(self) -> dict[str, str]:
        """Configured name per stage kind, for the stages this pipeline runs."""
        names = {"retrieve": self.retriever_name}
        names |= {step.stage.kind: step.name for step in self.steps}
        if self.generator is not None:
            names["generate"] = self.generator_name
        return names

    # ---- building ----------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: Store) -> Pipeline:
        stages = parse_config(config)
        retrieve = stages.get("retrieve") or StageConfig(name="")
        if not retrieve.name:
            retrieve.name = default_retriever_name(store)
        retriever = RETRIEVERS.create(retrieve.name, store=store, **retrieve.params)
        steps = [
            Step(
                _step_registry(section).create(stages[section].name, **stages[section].params),
                _step_limits(section, stages[section]),
                stages[section].name,
            )
            for section in _STEP_SECTIONS
            if section in stages
        ]
        warnings: list[str] = []
        generator = None
        if "generate" in stages:
            try:
                generator = GENERATORS.create(stages["generate"].name, **stages["generate"].params)
            except (MissingDependency, ModelUnavailable) as exc:
                # A missing or corrupt model must not take search down with it.
                warnings.append(f"generation is off, answers are the best passages: {exc}")
                log.warning("%s", warnings[-1])
        if generator is not None:
            generator.media = media_resolver(store.media_root)
        pipeline = cls(
            retriever,
            steps,
            generator,
            k=retrieve.k or 20,
            retriever_name=retrieve.name,
            generator_name=stages["generate"].name if "generate" in stages else None,
        )
        pipeline.warnings = warnings
        return pipeline

    @classmethod
    def from_toml(cls, path: str | Path | None, store: Store) -> Pipeline:
        """Build from a TOML file (None: the default config, retrieval + local generation)."""
        if path is None:
            return cls.from_config(DEFAULT_CONFIG, store)
        file = Path(path)
        try:
            config = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read pipeline config {file}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        return cls.from_config(config, store)

    # ---- stages, each callable alone ---------------------------------------------

    def retrieve(self, question: Query | str, k: int | None = None) -> Ranked:
        query = Query(text=question) if isinstance(question, str) else question
        return self.retriever.retrieve(query, k or self.k)

    def postprocess(self, ranked: Ranked, stages: list[StageReport] | None = None) -> Ranked:
        """`ranked` through every step in order (reranking, refining)."""
        stages = stages if stages is not None else []
        for step in self.steps:
            ranked = self._run(step, ranked, stages)
        return ranked

    def generate(self, ranked: Ranked, max_tokens: int | None = None) -> Answer:
        return _last_answer(self.generate_stream(ranked, max_tokens))

    # ---- composed ----------------------------------------------------------------

    def context(self, question: Query | str, stages: list[StageReport] | None = None) -> Ranked:
        """Retrieve, then every step: the passages a generator would read."""
        stages = stages if stages is not None else []
        started = time.perf_counter()
        ranked = self.retrieve(question)
        report = _summary("retrieve", self.retriever_name, None, ranked, started)
        report.extra["k"] = self.k
        stages.append(report)
        ranked = self.postprocess(ranked, stages)
        if self.generator is not None:
            # A text-only model cannot read a photo without caption or OCR text: leaving
            # it out keeps the numbering of what the model saw and what it cites the same.
            readable = [h for h in ranked.hits if self.generator.readable(h)]
            if len(readable) < len(ranked.hits):
                stages[-1].extra["unreadable_dropped"] = len(ranked.hits) - len(readable)
                ranked = ranked.with_hits(readable)
        return ranked

    def stream(
        self, question: Query | str, max_tokens: int | None = None
    ) -> Iterator[PipelineItem]:
        """The context (a `Ranked`) first, then answer text pieces, then the `Answer`."""
        stages: list[StageReport] = []
        ranked = self.context(question, stages)
        yield ranked
        yield from self.generate_stream(ranked, max_tokens, stages)

    def ask(self, question: Query | str, max_tokens: int | None = None) -> Answer:
        return _last_answer(self.stream(question, max_tokens))

    def standalone(self, history: list[dict[str, Any]], question: str) -> str:
        """A follow-up question rewritten to stand alone, by the generator's own model
        (as it is when there is no earlier turn or no language model)."""
        lm = getattr(self.generator, "lm", None)
        if lm is None or not history:
            return question
        from mmrag.generate.rewrite import standalone_question

        return standalone_question(lm, history, question)

    # ---- internals ---------------------------------------------------------------

    def _run(self, step: Step, before: Ranked, stages: list[StageReport]) -> Ranked:
        started = time.perf_counter()
        try:
            after = step.stage.apply(before, step.limits)
        except Exception as exc:
            raise StageFailed(step.stage.kind, step.name, exc, before) from exc
        report = _summary(step.stage.kind, step.name, before, after, started)
        new = after.reports[len(before.reports) :]
        report.extra.update(step.stage.summarise(before, after, new, step.limits))
        stages.append(report)
        return after

    def generate_stream(
        self,
        ranked: Ranked,
        max_tokens: int | None = None,
        stages: list[StageReport] | None = None,
    ) -> Iterator[str | Answer]:
        """Answer text pieces then the `Answer`, whose `stages` extend the given summaries."""
        stages = list(stages or [])
        if self.generator is None:
            yield Answer(
                ranked.query.text,
                "",
                list(ranked.hits),
                reports=list(ranked.reports),
                stages=stages,
                finish_reason="no_generator",
            )
            return
        started = time.perf_counter()
        items = self.generator.stream(ranked, max_tokens)
        try:
            for item in items:
                if isinstance(item, Answer):
                    item.stages = [*stages, self._generate_summary(ranked, item, started)]
                yield item
        except ConfigError:  # the question or an option is wrong: say so, in one line
            raise
        except Exception as exc:  # a model or transport failure: still hand back the passages
            raise StageFailed("generate", self.generator_name, exc, ranked) from exc
        finally:
            items.close()

    def _generate_summary(self, ranked: Ranked, answer: Answer, started: float) -> StageReport:
        own = answer.reports[-1] if answer.reports else StageReport("generate", "")
        return StageReport(
            stage="generate",
            name=self.generator_name,
            seconds=time.perf_counter() - started,
            n_in=len(ranked),
            n_out=len(answer.citations),
            model_calls=own.model_calls,
            tokens=own.tokens,
            errors=list(own.errors),
            extra={k: v for k, v in own.extra.items() if k != "model"},
        )


def _summary(
    stage: str, name: str, before: Ranked | None, after: Ranked, started: float
) -> StageReport:
    """What one stage did in a run: time, candidates in and out, and its model calls,
    tokens and errors (from the reports it added)."""
    new = after.reports[len(before.reports) :] if before is not None else after.reports
    return StageReport(
        stage=stage,
        name=name,
        seconds=time.perf_counter() - started,
        n_in=len(before) if before is not None else 0,
        n_out=len(after),
        model_calls=sum(r.model_calls for r in new),
        tokens=sum(r.tokens for r in new),
        errors=[e for r in new for e in r.errors],
    )


def _last_answer(items: Iterator[Any]) -> Answer:
    answer = None
    for item in items:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise RuntimeError("the pipeline ended without an answer")
    return answer
