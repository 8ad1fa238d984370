"""Rerankers, refiners and a user's own stage share one interface, and a pipeline is any
list of them (examples/corpus store, real BM25, cross-encoder and extractive refiner)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mmrag.pipeline import Pipeline, StageFailed, Step
from mmrag.refine import REFINERS
from mmrag.rerank import RERANKERS
from mmrag.retrieve import RETRIEVERS
from mmrag.stage import Limits, Stage
from mmrag.types import Query, Ranked, StageReport
from tests.corpus_store import corpus_store

QUESTION = "Who invented the printing press?"


class SourceFilter(Stage):
    """Keeps hits from one file: what a user might add between reranking and refining."""

    name = "only-printing"
    kind = "filter"

    def apply(self, ranked: Ranked, limits: Limits) -> Ranked:
        kept = [h for h in ranked.hits if Path(h.doc.source or "").name == "printing-press.txt"]
        report = StageReport(stage=self.kind, name=self.name, n_in=len(ranked), n_out=len(kept))
        return ranked.with_hits(kept[: limits.k], report)

    def summarise(
        self, before: Ranked, after: Ranked, reports: Sequence[StageReport], limits: Limits
    ) -> dict[str, Any]:
        return {"dropped": len(before) - len(after)}


class Broken(Stage):
    name = "broken"
    kind = "filter"

    def apply(self, ranked: Ranked, limits: Limits) -> Ranked:
        raise RuntimeError("disk on fire")


@pytest.fixture(scope="module")
def store(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mmrag.index.store import EmbeddedStore

    with EmbeddedStore(corpus_store(cache_dir, tmp_path_factory.mktemp("s") / "st")) as st:
        yield st


def test_rerankers_and_refiners_are_stages_with_one_call() -> None:
    reranker = RERANKERS.create("cross-encoder-onnx")
    refiner = REFINERS.create("extractive")
    assert isinstance(reranker, Stage) and isinstance(refiner, Stage)
    assert (reranker.kind, refiner.kind) == ("rerank", "refine")


def test_any_list_of_stages_runs_in_order(store: Any) -> None:
    bm25 = RETRIEVERS.create("bm25", store=store)
    steps = [
        Step(RERANKERS.create("cross-encoder-onnx"), Limits(k=6)),
        Step(SourceFilter(), Limits(k=2)),
        Step(REFINERS.create("extractive"), Limits(tokens=60), name="short"),
    ]
    pipeline = Pipeline(bm25, steps, k=10)
    stages: list[StageReport] = []
    ranked = pipeline.context(QUESTION, stages)
    assert [s.stage for s in stages] == ["retrieve", "rerank", "filter", "refine"]
    assert [s.name for s in stages] == ["bm25", "cross-encoder-onnx", "only-printing", "short"]
    retrieve, rerank, keep, refine = stages
    assert rerank.n_out == 6 and rerank.extra["k"] == 6
    assert keep.n_in == 6 and keep.n_out <= 2 and keep.extra["dropped"] >= 4
    # the refiner may drop a hit whose sentences do not fit the budget
    assert refine.n_in == keep.n_out and 1 <= len(ranked) <= keep.n_out
    assert refine.extra["budget"] == 60 and refine.extra["tokens_out"] <= 60
    assert all(Path(h.doc.source or "").name == "printing-press.txt" for h in ranked.hits)
    assert "Gutenberg" in " ".join(h.text for h in ranked.hits)
    # each stage's own report travels with the ranking, in order
    assert [r.stage for r in ranked.reports] == ["retrieve", "rerank", "filter", "refine"]
    assert pipeline.names == {
        "retrieve": "bm25",
        "rerank": "cross-encoder-onnx",
        "filter": "only-printing",
        "refine": "short",
    }


def test_the_same_stage_called_alone_gives_the_same_ranking(store: Any) -> None:
    bm25 = RETRIEVERS.create("bm25", store=store)
    reranker = RERANKERS.create("cross-encoder-onnx")
    first = bm25.retrieve(Query(QUESTION), 10)
    alone = reranker.rerank(first, 4)
    through = Pipeline(bm25, [Step(reranker, Limits(k=4))], k=10).postprocess(first)
    assert through.ids() == alone.ids()
    assert [h.score for h in through.hits] == [h.score for h in alone.hits]


def test_a_failing_stage_hands_back_the_ranking_it_was_given(store: Any) -> None:
    bm25 = RETRIEVERS.create("bm25", store=store)
    pipeline = Pipeline(bm25, [Step(SourceFilter(), Limits(k=3)), Step(Broken())], k=10)
    with pytest.raises(StageFailed) as failure:
        pipeline.context(QUESTION)
    assert failure.value.stage == "filter" and failure.value.name == "broken"
    assert "disk on fire" in str(failure.value)
    assert 1 <= len(failure.value.ranked) <= 3  # what the filter passed on
