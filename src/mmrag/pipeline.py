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

A stage missing from the file is skipped. Every stage is also callable alone
(`retrieve`, `rerank`, `refine`, `generate`). `ask` and `stream` record, per stage, the
wall time, candidates in and out, model calls, tokens and budget in `Answer.stages`.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, MissingDependency, MMRagError, ModelUnavailable
from mmrag.generate import GENERATORS, Answer, Generator
from mmrag.index.base import Store
from mmrag.registry import Registry
from mmrag.retrieve import RETRIEVERS, Retriever
from mmrag.types import Document, Query, Ranked, StageReport

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
# This is the configuration bench/results/qa-models.json measured.
DEFAULT_CONFIG: dict[str, Any] = {
    "retrieve": {"k": 20},
    "rerank": {"name": "cross-encoder-onnx", "k": 3},
    "refine": {"name": "extractive", "budget": 300},
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


def media_resolver(root: str | Path) -> Callable[[Document], Path | None]:
    """Find a document's media file, only ever inside the store folder `root`.

    A relative `media` reference is taken from `root`; a document without one falls
    back to its source file (uploaded files live in the store). Anything that resolves
    outside `root` (absolute paths, `..`, symlinks leading out) is refused.
    """
    base = Path(root).resolve()

    def resolve(doc: Document) -> Path | None:
        ref = doc.media or doc.source
        if not ref or "\x00" in ref:
            return None
        path = (base / ref).resolve()  # an absolute ref replaces base, then must lie inside it
        if not path.is_relative_to(base) or path == base or not path.is_file():
            return None
        return path

    return resolve


def default_retriever_name(store: Store) -> str:
    """What to search with when the config names no retriever: every modality the store has."""
    fields = store.fields()
    return "multimodal" if "image" in fields else "hybrid" if "text" in fields else "bm25"


def _registry(stage: str) -> Registry[Any]:
    if stage == "rerank":
        from mmrag.rerank import RERANKERS

        return RERANKERS
    if stage == "refine":
        from mmrag.refine import REFINERS

        return REFINERS
    return GENERATORS if stage == "generate" else RETRIEVERS


class Pipeline:
    """Plain composition of the four stages; `reranker`, `refiner` and `generator` are optional."""

    def __init__(
        self,
        retriever: Retriever,
        reranker: Any | None = None,
        refiner: Any | None = None,
        generator: Generator | None = None,
        *,
        k: int = 20,
        rerank_k: int = 5,
        budget: int = 512,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.refiner = refiner
        self.generator = generator
        self.k = k
        self.rerank_k = rerank_k
        self.budget = budget
        # what went wrong while building (a generator that could not load), for the user
        self.warnings: list[str] = []
        self.names = {
            "retrieve": getattr(retriever, "name", "retriever"),
            "rerank": getattr(reranker, "name", "reranker"),
            "refine": getattr(refiner, "name", "refiner"),
            "generate": getattr(generator, "name", "generator"),
            **(names or {}),
        }

    # ---- building ----------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any], store: Store) -> Pipeline:
        stages = parse_config(config)
        retrieve = stages.get("retrieve") or StageConfig(name="")
        if not retrieve.name:
            retrieve.name = default_retriever_name(store)
        built: dict[str, Any] = {
            "retrieve": RETRIEVERS.create(retrieve.name, store=store, **retrieve.params)
        }
        for stage in ("rerank", "refine"):
            if stage in stages:
                built[stage] = _registry(stage).create(stages[stage].name, **stages[stage].params)
        warnings: list[str] = []
        if "generate" in stages:
            try:
                built["generate"] = GENERATORS.create(
                    stages["generate"].name, **stages["generate"].params
                )
            except (MissingDependency, ModelUnavailable) as exc:
                # A missing or corrupt model must not take search down with it.
                warnings.append(f"generation is off, answers are the best passages: {exc}")
                log.warning("%s", warnings[-1])
        generator = built.get("generate")
        if generator is not None:
            # media files live in the store folder (embedded) or its blob folder (servers)
            root = getattr(store, "blob_root", None) or getattr(store, "path", None)
            if root is not None:
                generator.media = media_resolver(root)
        pipeline = cls(
            built["retrieve"],
            built.get("rerank"),
            built.get("refine"),
            generator,
            k=retrieve.k or 20,
            rerank_k=(stages["rerank"].k or 5) if "rerank" in stages else 5,
            budget=(stages["refine"].budget or 512) if "refine" in stages else 512,
            names={s: c.name for s, c in stages.items() if c.name} | {"retrieve": retrieve.name},
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

    def rerank(self, ranked: Ranked, k: int | None = None) -> Ranked:
        if self.reranker is None:
            return ranked
        return self.reranker.rerank(ranked, k or self.rerank_k)

    def refine(self, ranked: Ranked, budget: int | None = None) -> Ranked:
        if self.refiner is None:
            return ranked
        return self.refiner.refine(ranked.query, ranked, budget_tokens=budget or self.budget)

    def generate(self, ranked: Ranked, max_tokens: int | None = None) -> Answer:
        return _last_answer(self.generate_stream(ranked, max_tokens))

    # ---- composed ----------------------------------------------------------------

    def context(self, question: Query | str, stages: list[StageReport] | None = None) -> Ranked:
        """Retrieve, rerank and refine: the passages a generator would read."""
        stages = stages if stages is not None else []
        ranked = self._run("retrieve", None, lambda: self.retrieve(question), stages)
        if self.reranker is not None:
            ranked = self._run("rerank", ranked, lambda r=ranked: self.rerank(r), stages)
        if self.refiner is not None:
            ranked = self._run("refine", ranked, lambda r=ranked: self.refine(r), stages)
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

    def _run(
        self,
        stage: str,
        before: Ranked | None,
        call: Callable[[], Ranked],
        stages: list[StageReport],
    ) -> Ranked:
        started = time.perf_counter()
        try:
            ranked = call()
        except Exception as exc:
            if before is None:  # retrieval itself failed: nothing to hand back
                raise
            raise StageFailed(stage, self.names[stage], exc, before) from exc
        stages.append(self._summary(stage, before, ranked, time.perf_counter() - started))
        return ranked

    def _summary(
        self, stage: str, before: Ranked | None, after: Ranked, seconds: float
    ) -> StageReport:
        new = after.reports[len(before.reports) :] if before is not None else after.reports
        report = StageReport(
            stage=stage,
            name=self.names[stage],
            seconds=seconds,
            n_in=len(before) if before is not None else 0,
            n_out=len(after),
            model_calls=sum(r.model_calls for r in new),
            tokens=sum(r.tokens for r in new),
            errors=[e for r in new for e in r.errors],
        )
        if stage == "retrieve":
            report.extra["k"] = self.k
        elif stage == "rerank":
            report.extra["k"] = self.rerank_k
        elif stage == "refine":
            report.extra["budget"] = self.budget
            report.extra["words_in"] = _words(before) if before is not None else 0
            report.extra["words_out"] = _words(after)
            # the refiner counts with its own tokenizer: pass its figures on
            for r in new:
                for key in ("tokens_in", "tokens_out", "achieved_rate"):
                    if key in r.extra:
                        report.extra[key] = r.extra[key]
        return report

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
            raise StageFailed("generate", self.names["generate"], exc, ranked) from exc
        finally:
            items.close()

    def _generate_summary(self, ranked: Ranked, answer: Answer, started: float) -> StageReport:
        own = answer.reports[-1] if answer.reports else StageReport("generate", "")
        return StageReport(
            stage="generate",
            name=self.names["generate"],
            seconds=time.perf_counter() - started,
            n_in=len(ranked),
            n_out=len(answer.citations),
            model_calls=own.model_calls,
            tokens=own.tokens,
            errors=list(own.errors),
            extra={k: v for k, v in own.extra.items() if k != "model"},
        )


def _words(ranked: Ranked) -> int:
    return sum(len(h.text.split()) for h in ranked.hits)


def _last_answer(items: Iterator[Any]) -> Answer:
    answer = None
    for item in items:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise RuntimeError("the pipeline ended without an answer")
    return answer
