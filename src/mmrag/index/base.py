"""The store interface every backend implements: the embedded store and distributed ones.

Retrievers and the indexer talk only to this interface, so moving a collection from
the embedded store to a server keeps code, config and data model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import StoreError
from mmrag.index.analyzer import Analyzer
from mmrag.index.batch import Batch
from mmrag.index.bm25 import BM25Params
from mmrag.index.fields import TEXT, FieldSpec
from mmrag.types import Document

Scored = list[tuple[Document, float]]  # best first


@dataclass(slots=True)
class Candidates:
    """One query's candidates before their documents are loaded, best first.

    `keys` name documents inside the store that found them (row ids in the embedded
    store), so fusion and filtering need no document text; `docs` holds documents a
    backend returned with its search anyway (key -> document), saving a second fetch.
    """

    keys: list[Hashable]
    scores: list[float]
    docs: dict[Hashable, Document] | None = None

    @classmethod
    def of(cls, scored: Scored) -> Candidates:
        return cls([d.id for d, _ in scored], [s for _, s in scored], {d.id: d for d, _ in scored})


def field_exists(
    fields: dict[str, dict[str, Any]], name: str, dim: int, encoder: dict[str, Any], space: str
) -> bool:
    """Whether vector field `name` is declared already; refuses a different encoder, dim
    or space, so vectors from two models never share a field."""
    if name not in fields:
        return False
    stored = FieldSpec.from_dict(fields[name])
    if not stored.same_vectors(FieldSpec(space, dim, encoder)):
        raise StoreError(
            f"vector field {name!r} holds {stored.space} vectors from {stored.identity}; "
            f"refusing to mix in {space} vectors from {encoder}"
        )
    return True


class Store(ABC):
    """Documents with a sparse (BM25) index and named dense vector fields.

    A document's key is the backend's own handle for it (a row number, a document id):
    candidates, `iter_documents` and `filter_keys` use it, and fusion never looks inside.
    """

    # how text becomes BM25 terms; fixed when the store is created
    analyzer: Analyzer
    # the backend searches sparse and dense together itself (`search_hybrid`)
    server_hybrid: bool = False
    # a writable handle excludes every other writer (so files only it writes, such as a
    # server's uploads, can be swept for orphans when it opens)
    sole_writer: bool = False

    @property
    @abstractmethod
    def media_root(self) -> Path:
        """The folder documents' media references (images, pages, uploads) resolve in."""

    # ---- schema ------------------------------------------------------------------
    @abstractmethod
    def fields(self) -> dict[str, dict[str, Any]]:
        """Vector fields: name -> its record, {"space", "dim", "encoder"}; read it with
        `FieldSpec.from_dict` (records of older stores lack "space")."""

    @abstractmethod
    def ensure_field(
        self, name: str, dim: int, encoder: dict[str, Any], *, space: str = TEXT
    ) -> None:
        """Declare a vector field of `space` (index/fields.py) whose vectors `encoder`
        (its info()) makes, or check that an existing one holds the same."""

    @abstractmethod
    def index_config(self) -> dict[str, Any] | None:
        """The settings the store was last indexed with (`IndexConfig.to_dict()`), if any."""

    @abstractmethod
    def set_index_config(self, config: dict[str, Any]) -> None:
        """Remember the settings of an indexing run, so the next one can reuse them."""

    # ---- writing -----------------------------------------------------------------
    @abstractmethod
    def write(self, batch: Batch) -> None:
        """Replace the batch's sources and insert its documents, all or nothing."""

    @abstractmethod
    def delete_sources(self, source_ids: Sequence[str]) -> int:
        """Delete sources and their documents; returns how many documents went."""

    @abstractmethod
    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete single documents by id; returns how many existed."""

    def checkpoint(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Make what was written durable and quick to reopen (a no-op where a server does it)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading -----------------------------------------------------------------
    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def info(self) -> dict[str, Any]: ...

    @abstractmethod
    def source_hashes(self) -> dict[str, str]:
        """source id -> content hash, for idempotent re-indexing."""

    @abstractmethod
    def sources(self) -> list[dict[str, Any]]:
        """One dict per source: source_id, path, title, content_hash, chunks."""

    @abstractmethod
    def get(self, doc_ids: Sequence[str]) -> list[Document]: ...

    @abstractmethod
    def iter_documents(self, batch: int = 1000) -> Iterator[tuple[Hashable, Document]]:
        """Every document with its key, a page at a time (memory stays bounded)."""

    @abstractmethod
    def filter_keys(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Keys of the documents a metadata filter matches, or None when there is no filter."""

    @abstractmethod
    def search_sparse(
        self,
        queries: Sequence[str],
        k: int,
        params: BM25Params,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        """BM25 (or a variant) over the analysed text, one list per query."""

    @abstractmethod
    def search_dense(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        """Nearest neighbours in a vector field (inner product on normalised vectors)."""

    def search_hybrid(
        self,
        queries: Sequence[str],
        vectors: dict[str, np.ndarray],
        k: int,
        *,
        sparse: bool = True,
        fusion: str = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: float = 60.0,
        depth: int = 100,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        """BM25 and dense searches fused by the backend itself, where `server_hybrid`."""
        raise StoreError(f"{type(self).__name__} does not fuse searches itself")

    # ---- candidates: search without loading documents ------------------------------
    # A backend that can search by internal keys overrides these four; the defaults
    # serve any backend through the searches above, keyed by document id.

    def sparse_candidates(
        self,
        queries: Sequence[str],
        k: int,
        params: BM25Params,
        filters: dict[str, Any] | None = None,
    ) -> list[Candidates]:
        return [Candidates.of(s) for s in self.search_sparse(queries, k, params, filters)]

    def dense_candidates(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Candidates]:
        return [Candidates.of(s) for s in self.search_dense(field, vectors, k, filters)]

    def candidate_ids(self, keys: Sequence[Hashable]) -> dict[Hashable, str]:
        """Document id per key: the tie-break of fusion, the same in every backend."""
        return {key: str(key) for key in keys}

    def candidate_documents(self, keys: Sequence[Hashable]) -> dict[Hashable, Document]:
        """Documents per key; keys whose document is gone are missing."""
        return {d.id: d for d in self.get([str(key) for key in keys])}
