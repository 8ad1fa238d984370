"""The process a crash trial kills: one store operation, as mmrag runs it.

    python -m tests.faults.child <op> <store> <corpus folder> [paths...]

Operations through the real indexer (build_indexer from an IndexConfig, as `mmrag index`
does), with small commit batches so that a small corpus still makes many commits:
  index    index the folder (new files added, changed ones replaced)
  prune    index the folder with prune=True (stored files that are gone are deleted)
Store-level operations with unit random vectors (no encoder, many commits per second):
  churn    write 20-chunk batches, delete some sources, checkpoint every 3 batches
  ann      write 2,500-row batches past the exact-search threshold, so the dense index
           turns into an HNSW graph and is saved as one, deleting as it goes

`remove` and the whole `mmrag index` are run as the real CLI instead (harness.py).
The writer's log and the crash point come from MMRAG_COMMIT_LOG and MMRAG_CRASH_AT.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.build import build_indexer
from mmrag.indexing.config import IndexConfig
from mmrag.types import Document

# about 4 short SciFact abstracts (text and MiniLM vectors) per commit
COMMIT_BYTES = 8 << 10
ENCODER = {"text_encoder": "onnx", "text_model": "all-MiniLM-L6-v2-int8"}
CONFIG = IndexConfig(**ENCODER, image_encoder=None, asr=None, workers=1)
CHURN_BATCHES = 12
ANN_BATCHES = 10  # 25,000 rows: past DenseIndex's 20,000-row exact threshold at batch 8
ANN_ROWS = 2500
DIM = 16


def run_indexer(store_dir: Path, folder: Path, prune: bool) -> None:
    with EmbeddedStore(store_dir) as store:
        indexer = build_indexer(store, CONFIG)
        indexer.commit_bytes = COMMIT_BYTES
        indexer.index_paths([folder], prune=prune)
        store.set_index_config(CONFIG.to_dict())


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    # unit length, as encoders give: then a vector's best inner product is with itself
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_batch(store: EmbeddedStore, b: int, n: int, texts: list[str]) -> Batch:
    rng = np.random.default_rng(b)
    docs, sources = [], []
    for i in range(n):
        source = f"s{b}-{i // 4}"  # four chunks per source
        doc_id = f"b{b}-d{i}"
        text = f"zqr{b % 10_000:04d} mark{b}x{i} " + texts[(b * n + i) % len(texts)]
        if i % 4 == 0:
            sources.append(SourceInfo(source_id=source, content_hash=f"h{b}"))
        docs.append(Document(id=doc_id, text=text, source_id=source))
    return Batch(
        sources=sources,
        docs=docs,
        tokens=[store.analyzer.tokens(d.text) for d in docs],
        vectors={"text": FieldVectors.full(unit_vectors(rng, n))},
    )


def run_store_writer(store_dir: Path, texts: list[str], batches: int, rows: int) -> None:
    with EmbeddedStore(store_dir) as store:
        store.ensure_field("text", DIM, {"kind": "random", "model": "crash-test"})
        every = 3 if rows < 1000 else 2
        for b in range(batches):
            store.write(random_batch(store, b, rows, texts))
            if b % 2 == 1:  # the first source of the batch before: a delete per two writes
                store.delete_sources([f"s{b - 1}-0"])
            if b % every == every - 1:
                store.checkpoint()


def main(argv: list[str]) -> None:
    op, store_dir, folder = argv[0], Path(argv[1]), Path(argv[2])
    if op in ("index", "prune"):
        run_indexer(store_dir, folder, prune=op == "prune")
        return
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))]
    if op == "churn":
        run_store_writer(store_dir, texts, CHURN_BATCHES, 20)
    elif op == "ann":
        run_store_writer(store_dir, texts, ANN_BATCHES, ANN_ROWS)
    else:
        raise SystemExit(f"unknown operation {op!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
