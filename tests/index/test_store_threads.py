"""One EmbeddedStore shared by threads: searches during writes see whole batches only."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.store import EmbeddedStore
from mmrag.types import Document

BATCHES = 30
PER_BATCH = 8
DIM = 8


def batch(i: int) -> Batch:
    """Batch i: every document holds the word 'shared' and the batch's own word."""
    docs = [
        Document(id=f"b{i}-{j}", text=f"shared word{i} filler{j}", source_id=f"s{i}")
        for j in range(PER_BATCH)
    ]
    vectors = np.random.default_rng(i).normal(size=(PER_BATCH, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Batch(
        sources=[SourceInfo(f"s{i}", str(i))],
        docs=docs,
        vectors={"text": FieldVectors(np.arange(PER_BATCH), vectors)},
    )


def test_searches_in_threads_during_writes_see_whole_batches(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    sizes: list[int] = []
    done = threading.Event()
    with EmbeddedStore(tmp_path / "s") as store:
        store.ensure_field("text", DIM, {"kind": "test", "model": "random", "dim": DIM})

        def read() -> None:
            probe = np.ones((1, DIM), dtype=np.float32) / np.sqrt(DIM)
            try:
                while not done.is_set():
                    hits = store.search_sparse(["shared"], 1000, BM25Params())[0]
                    sizes.append(len(hits))
                    store.search_dense("text", probe, 5)
                    store.candidate_documents([1, 2, 3])
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(4)]
        for r in readers:
            r.start()
        try:
            for i in range(BATCHES):
                store.write(batch(i))
                if i % 3 == 2:
                    store.delete_sources([f"s{i - 1}"])
        finally:
            done.set()
            for r in readers:
                r.join()
        assert not errors, errors
        assert sizes and all(n % PER_BATCH == 0 for n in sizes)  # never half a batch
        left = store.search_sparse(["shared"], 1000, BM25Params())[0]
        assert len(left) == len(store) == (BATCHES - BATCHES // 3) * PER_BATCH
