"""Multi-vector page embeddings (ColPali) beside a store that keeps one vector per field.

The store's "page" field holds each page's mean-pooled token vector (normalised): a
cheap first stage that finds candidates with the store's ordinary dense search. The
full token matrices live in this side table (SQLite, float16, keyed by document id)
and are read only for those candidates, to rescore them by MaxSim. A ColPali page has
about 1,030 tokens x 128 dims: 260 KB in float16, too much to keep in memory per page.

The table is written when pages are embedded, before the store commits the batch; a
batch that then fails leaves rows no store document points to, which `prune` removes
and which retrieval never reads (it looks up only documents the store returned).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmrag.index.embedders import FieldEmbedder
from mmrag.index.fields import PAGE
from mmrag.index.image_embedder import PICTURES
from mmrag.models.page_encoders import PageEncoder
from mmrag.models.text import normalise
from mmrag.types import Document, Modality


class MultiVectorTable:
    """doc id -> (tokens, dim) float16 matrix, in one SQLite file."""

    def __init__(self, path: str | Path, dim: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS multivectors (id TEXT PRIMARY KEY, n INTEGER, vecs BLOB)"
        )
        self.db.commit()

    def put(self, ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        rows = []
        for doc_id, m in zip(ids, matrices, strict=True):
            if m.ndim != 2 or m.shape[1] != self.dim:
                raise ValueError(f"{doc_id}: expected (tokens, {self.dim}), got {m.shape}")
            rows.append((doc_id, int(m.shape[0]), m.astype(np.float16).tobytes()))
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO multivectors VALUES (?,?,?)", rows)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), 900):
            part = list(ids[start : start + 900])
            marks = ",".join("?" * len(part))
            for doc_id, n, blob in self.db.execute(
                f"SELECT id, n, vecs FROM multivectors WHERE id IN ({marks})", part
            ):
                out[doc_id] = (
                    np.frombuffer(blob, np.float16).reshape(n, self.dim).astype(np.float32)
                )
        return out

    def prune(self, live_ids: Iterable[str]) -> int:
        """Delete rows whose document is no longer in the store; returns how many."""
        live = set(live_ids)
        dead = [r[0] for r in self.db.execute("SELECT id FROM multivectors") if r[0] not in live]
        with self.db:
            self.db.executemany("DELETE FROM multivectors WHERE id=?", [(d,) for d in dead])
        return len(dead)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM multivectors").fetchone()[0]

    def close(self) -> None:
        self.db.close()


def table_path(store_path: str | Path, field: str = "page") -> Path:
    """Where a store directory keeps the multi-vectors of a field."""
    return Path(store_path) / f"multivec-{field}.sqlite"


def pooled(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each matrix's rows, normalised: the first-stage vector."""
    return normalise(np.stack([m.mean(axis=0) for m in matrices]))


class PageFieldEmbedder(FieldEmbedder):
    """Pooled vectors into the store's field; token matrices into the side table."""

    space: ClassVar[str] = PAGE

    def __init__(
        self,
        encoder: PageEncoder,
        table: MultiVectorTable,
        field: str = "page",
        modalities: Sequence[Modality] = (Modality.PAGE,),
        batch_size: int = 4,
    ) -> None:
        self.encoder, self.table, self.field = encoder, table, field
        self.dim = encoder.dim
        self.modalities = frozenset(modalities)
        self.batch_size = batch_size

    def info(self) -> dict[str, Any]:
        return {**self.encoder.info(), "pooling": "mean", "multivector": self.table.path.name}

    def accepts(self, doc: Document) -> bool:
        return doc.modality in self.modalities and doc.modality in PICTURES

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        for start in range(0, len(docs), self.batch_size):
            part = list(docs[start : start + self.batch_size])
            images = [PICTURES[d.modality](d) for d in part]
            matrices = self.encoder.encode_pages(images, batch_size=self.batch_size)
            self.table.put([d.id for d in part], matrices)
            out[start : start + len(part)] = pooled(matrices)
        return out
