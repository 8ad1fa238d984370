"""Fixtures for reranker tests: real DL19 queries with their BM25 candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.eval.datasets import Dl19Data, load_dl19
from mmrag.types import Document, Hit, Query, Ranked


@pytest.fixture(scope="session")
def dl19(data_dir: Path) -> Dl19Data:
    return load_dl19(data_dir / "trec-dl19")


def dl19_ranked(data: Dl19Data, qid: str, depth: int = 100) -> Ranked:
    """One DL19 query with its BM25 top-`depth`, as a first stage would hand it on."""
    hits = [
        Hit(doc=Document(id=c.doc_id, text=c.text), score=c.score, scores={"bm25": c.score})
        for c in data.candidates[qid][:depth]
    ]
    return Ranked(Query(text=data.queries[qid], id=qid), hits)
