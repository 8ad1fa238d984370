"""A small real store for the fault tests: SciFact abstracts, BM25 and 8-d random vectors
(fixed seed), written in batches of whole sources and closed (so checkpointed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.store import EmbeddedStore
from mmrag.types import Document

DIM = 8
PER_SOURCE = 3  # chunks per source, so a lost page can take part of a source


def scifact(data_dir: Path, n: int, chars: int = 400) -> list[tuple[str, str]]:
    out = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            out.append((rec["_id"], (rec["title"] + "\n" + rec["text"])[:chars]))
            if len(out) == n:
                break
    return out


def build(path: Path, records: list[tuple[str, str]], batch: int = 60) -> None:
    rng = np.random.default_rng(0)
    with EmbeddedStore(path) as store:
        store.ensure_field("text", DIM, {"kind": "random", "model": "faults"})
        for start in range(0, len(records), batch):
            part = records[start : start + batch]
            docs = [
                Document(
                    id=doc_id,
                    text=text,
                    source_id=f"src{(start + i) // PER_SOURCE}",
                    metadata={"n": start + i},
                )
                for i, (doc_id, text) in enumerate(part)
            ]
            sources = sorted({d.source_id for d in docs})
            store.write(
                Batch(
                    sources=[SourceInfo(s, f"hash-{s}") for s in sources],
                    docs=docs,
                    vectors={
                        "text": FieldVectors.full(
                            rng.standard_normal((len(docs), DIM)).astype(np.float32)
                        )
                    },
                )
            )


def searches(store: EmbeddedStore, records: list[tuple[str, str]], n: int = 20) -> tuple:
    """Sparse and dense rankings (ids, scores) of a fixed set of queries."""
    texts = [t[:60] for _, t in records[:n]]
    sparse = [[(d.id, s) for d, s in hits] for hits in store.search_sparse(texts, 10, BM25Params())]
    vecs = np.random.default_rng(7).standard_normal((n, DIM)).astype(np.float32)
    dense = [[(d.id, s) for d, s in hits] for hits in store.search_dense("text", vecs, 10)]
    return sparse, dense
