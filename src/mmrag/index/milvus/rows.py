"""Documents and sources as rows of a store's Milvus collections, and rows back as Documents.

A row has every column of its collection: a missing string is stored as "" and
metadata is made JSON-safe.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mmrag.errors import StoreError
from mmrag.index.analyzer import Analyzer
from mmrag.index.batch import Batch, SourceInfo
from mmrag.index.milvus.schema import HAS, MAX_VARCHAR, TERMS, VEC
from mmrag.types import Document, Modality, Span


def document_rows(
    batch: Batch, fields: dict[str, dict[str, Any]], analyzer: Analyzer, *, bm25: bool
) -> list[dict[str, Any]]:
    """The documents collection's rows for `batch`: a vector column per field and, with
    `bm25`, the analysed text (the batch's tokens, or `analyzer`'s when it has none)."""
    n = len(batch.docs)
    vectors: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for name, fv in batch.vectors.items():
        if name not in fields:
            raise StoreError(f"unknown vector field {name!r}; call ensure_field first")
        dim = fields[name]["dim"]
        if len(fv.positions) != len(fv.vectors) or fv.vectors.shape[1:] != (dim,):
            raise ValueError(f"field {name!r}: vectors do not match positions or dimension")
        if len(fv.positions) and (fv.positions.min() < 0 or fv.positions.max() >= n):
            raise ValueError(f"field {name!r}: positions outside the batch")
        full = np.zeros((n, dim), dtype=np.float32)
        full[fv.positions] = fv.vectors
        vectors[name] = full
        present[name] = np.zeros(n, dtype=bool)
        present[name][fv.positions] = True
    tokens = batch.tokens
    if bm25 and not tokens:
        tokens = [analyzer.tokens(d.text) for d in batch.docs]
    if tokens and len(tokens) != n:
        raise ValueError("one token list per document is required")
    rows = []
    for i, doc in enumerate(batch.docs):
        _check_length(doc.id, "text", doc.text)
        row: dict[str, Any] = {
            "id": doc.id,
            "source_id": doc.source_id or "",
            "modality": str(doc.modality),
            "text": doc.text,
            "source": doc.source or "",
            "media": doc.media or "",
            "span": doc.span.to_dict() if doc.span else {},
            "metadata": _jsonable(doc.metadata),
        }
        for name, info in fields.items():
            # A document without a vector in a field gets zeros, flagged absent, since
            # Milvus before 2.6 has no nullable vectors.
            has = name in present and bool(present[name][i])
            row[HAS + name] = has
            row[VEC + name] = vectors[name][i].tolist() if has else [0.0] * int(info["dim"])
        if bm25:
            row[TERMS] = " ".join(tokens[i])
            _check_length(doc.id, "analysed text", row[TERMS])
        rows.append(row)
    return rows


def source_rows(sources: list[SourceInfo]) -> list[dict[str, Any]]:
    return [
        {
            "source_id": s.source_id,
            "content_hash": s.content_hash,
            "path": s.path or "",
            "title": s.title or "",
            "metadata": _jsonable(s.metadata),
            "_v": [0.0, 0.0],
        }
        for s in sources
    ]


def _check_length(doc_id: str, what: str, text: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_VARCHAR:
        raise StoreError(
            f"document {doc_id!r}: {what} is {size} bytes; a Milvus VARCHAR holds {MAX_VARCHAR} "
            "(index with smaller chunks)"
        )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def to_document(row: dict[str, Any]) -> Document:
    return Document(
        id=row["id"],
        text=row["text"],
        modality=Modality(row["modality"]),
        source_id=row["source_id"] or None,
        source=row["source"] or None,
        media=row["media"] or None,
        span=Span.from_dict(row["span"]),
        metadata=row["metadata"] or {},
    )
