"""Add your own reranker to mmrag, register it under a name, and use it from a config.

    .venv/bin/python examples/custom_stage.py

A reranker implements one method, `score`: a number per candidate (NaN where it cannot
score one). The base class handles duplicates, the rerank depth, failures and the
stage report, and makes it a `Stage`, so a pipeline runs it like any built-in one.
docs/architecture.md walks through where each kind of part goes.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from mmrag.generate import Answer
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.pipeline import Pipeline
from mmrag.rerank import RERANKERS, Reranker
from mmrag.types import Hit, Query, StageReport

CORPUS = Path(__file__).resolve().parent / "corpus"


class QuestionWordsReranker(Reranker):
    """Share of the question's words that the passage contains: a crude relevance score,
    but enough to show the shape of a reranker."""

    name = "question-words"

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        words = set(re.findall(r"\w+", query.text.lower()))
        scores = [
            len(words & set(re.findall(r"\w+", hit.text.lower()))) / max(len(words), 1)
            for hit in hits
        ]
        report.model_calls = 0  # no model: nothing to count
        return np.asarray(scores)


def main(store_dir: Path) -> Answer:
    """Index the sample corpus (BM25 only) and retrieve for one question through a
    pipeline whose config names the new reranker; the answer holds the kept passages."""
    RERANKERS.register("question-words", QuestionWordsReranker)
    with EmbeddedStore(store_dir) as store:
        Indexer(store, progress=False).index_paths([CORPUS])
        config = {
            "retrieve": {"name": "bm25", "k": 10},
            "rerank": {"name": "question-words", "k": 2},
        }
        pipeline = Pipeline.from_config(config, store)
        answer = pipeline.ask("How does a derailleur move the chain?")
        for stage in answer.stages:
            print(f"{stage.stage:8} {stage.name:15} {stage.n_in:3} -> {stage.n_out}")
        sources = [Path(hit.doc.source or "").name for hit in answer.context]
        print("kept:", ", ".join(sources))
        return answer


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "store")
