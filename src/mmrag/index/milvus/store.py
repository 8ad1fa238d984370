"""The store on a Milvus server: the embedded store's lifecycle over pymilvus `MilvusClient`.

Milvus has no transactions, so `write` orders its steps for resumability instead: old
documents of the batch's sources go first, new ones are upserted by id, and the source
hashes are recorded last. A write cut short leaves its sources without a hash, so the
next run redoes them, and upserts by id never duplicate a document. Each server call is
retried with backoff while the server is unreachable (client.py), then reported as a
`StoreError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, StoreError
from mmrag.index.analyzer import Analyzer
from mmrag.index.base import Scored, Store, field_exists
from mmrag.index.batch import Batch
from mmrag.index.bm25 import BM25Params
from mmrag.index.fields import TEXT, FieldSpec
from mmrag.index.milvus.blobs import default_blob_dir, store_blob
from mmrag.index.milvus.client import CONSISTENCY, Connection
from mmrag.index.milvus.filters import literal, to_milvus_expr
from mmrag.index.milvus.rows import document_rows, source_rows, to_document
from mmrag.index.milvus.schema import (
    DOC_FIELDS,
    FORMAT,
    SPARSE,
    VEC,
    Capabilities,
    capabilities,
    check_field_name,
    chunks_schema,
    meta_schema,
    schema_problems,
    sources_schema,
)
from mmrag.index.milvus.search import (
    dense_params,
    hybrid_members,
    hybrid_search,
    query_terms,
    ranker,
    scored,
    search,
    search_filter,
)
from mmrag.registry import require
from mmrag.types import Document, Modality

DEFAULT_DENSE_INDEX: dict[str, Any] = {
    "index_type": "HNSW",
    "params": {"M": 16, "efConstruction": 200},
}
_IN_CHUNK = 500  # ids per `in [...]` expression
# Milvus allows 255 characters; the two companion collections add 9.
_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,200}$")


class MilvusStore(Store):
    """An mmrag store held in Milvus collections named `collection` (and two companions)."""

    def __init__(
        self,
        uri: str,
        collection: str,
        *,
        create: bool = True,
        read_only: bool = False,
        analyzer: Analyzer | None = None,
        bm25: BM25Params | None = None,
        blob_dir: str | Path | None = None,
        dense_index: dict[str, Any] | None = None,
        ef_search: int = 128,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 0.5,
    ) -> None:
        require("pymilvus", "scale")
        if not _COLLECTION.match(collection):
            raise ConfigError(
                f"Milvus collection name {collection!r}: letters, digits and _, "
                "starting with a letter"
            )
        self.uri, self.name, self.read_only = uri, collection, read_only
        self.ef_search = ef_search
        self._meta_name, self._sources_name = f"{collection}__meta", f"{collection}__sources"
        self.conn = Connection(
            uri,
            (self._meta_name, self._sources_name, collection),
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
        )
        self.caps: Capabilities = capabilities(self.conn.server_version)
        # Milvus 2.3.5's HNSW misses true neighbours whatever ef is (SciFact: 86 % of the
        # exact top 10 at ef 1,000, nDCG@10 0.590 against 0.645; bench/scale.py), so 2.3
        # gets the exact FLAT index unless the caller names one.
        default = DEFAULT_DENSE_INDEX if self.caps.hnsw else {"index_type": "FLAT"}
        self.dense_index = dense_index or default
        self.meta = self._open_meta(create, analyzer, bm25 or BM25Params())
        self.analyzer = self._check_analyzer(analyzer)
        self._chunks_ready = self._check_chunks()
        self.conn.call("load collections", self.conn.load)  # no-op unless the server restarted
        self.blob_dir = Path(blob_dir).expanduser() if blob_dir else default_blob_dir(collection)

    @property
    def client(self) -> Any:
        """The pymilvus `MilvusClient` (None once the store is closed)."""
        return self.conn.client

    # ---- opening ------------------------------------------------------------------

    def _open_meta(self, create: bool, analyzer: Analyzer | None, bm25: BM25Params) -> dict:
        if self.conn.has(self._meta_name):
            rows = self.conn.query(self._meta_name, 'key == "schema"', ["value"])
            if not rows:
                raise StoreError(f"Milvus at {self.uri}: {self._meta_name} has no schema record")
            meta = json.loads(rows[0]["value"])
            if meta.get("format") != FORMAT:
                raise StoreError(
                    f"collection {self.name} at {self.uri} has mmrag format "
                    f"{meta.get('format')}, this mmrag reads {FORMAT}"
                )
            return meta
        if self.conn.has(self.name):
            raise StoreError(
                f"collection {self.name} at {self.uri} was not created by mmrag "
                f"(no {self._meta_name}); refusing to write into it"
            )
        if not create or self.read_only:
            raise StoreError(f"no mmrag collection {self.name} at {self.uri} (index first)")
        if bm25.method != "lucene":
            raise StoreError(f"Milvus's BM25 function is Lucene BM25, not {bm25.method!r}")
        meta = {
            "format": FORMAT,
            "fields": {},
            "analyzer": (analyzer or Analyzer()).to_dict(),
            "bm25": (
                {"k1": bm25.k1, "b": bm25.b, "tokenizer": self.caps.tokenizer}
                if self.caps.bm25
                else None
            ),
        }
        for name, build in ((self._meta_name, meta_schema), (self._sources_name, sources_schema)):
            schema, index = build(self.client)
            self.conn.call(
                f"create {name}",
                lambda name=name, schema=schema, index=index: self.client.create_collection(
                    name, schema=schema, index_params=index, consistency_level=CONSISTENCY
                ),
            )
        self._save_meta(meta)
        return meta

    def _save_meta(self, meta: dict[str, Any]) -> None:
        row = {"key": "schema", "value": json.dumps(meta), "_v": [0.0, 0.0]}
        self.conn.upsert("save schema", self._meta_name, [row])

    def _check_analyzer(self, analyzer: Analyzer | None) -> Analyzer:
        stored = self.meta["analyzer"]
        if analyzer is not None and analyzer.to_dict() != stored:
            raise StoreError(
                f"collection {self.name} at {self.uri} was built with analyzer {stored}; "
                f"asked for {analyzer.to_dict()} (use a new collection to change it)"
            )
        return Analyzer.from_dict(stored)

    def _check_chunks(self) -> bool:
        """Whether the documents collection exists, after checking it matches the metadata."""
        if not self.conn.has(self.name):
            return False
        desc = self.conn.call("describe", lambda: self.client.describe_collection(self.name))
        problems = schema_problems(desc, self.meta)
        if problems:
            raise StoreError(
                f"collection {self.name} at {self.uri} does not match its mmrag schema: "
                + "; ".join(problems)
            )
        return True

    def _ensure_chunks(self) -> None:
        # Created lazily: Milvus cannot add a vector column later, so the collection waits
        # until every field the indexer declares is known.
        if self._chunks_ready:
            return
        schema, index = chunks_schema(self.client, self.meta, self.caps, self.dense_index)

        def create() -> None:
            # A create that timed out may have landed before the server went away; the
            # retry must then find the collection rather than fail on "already exists".
            if not self.client.has_collection(self.name):
                self.client.create_collection(
                    self.name, schema=schema, index_params=index, consistency_level=CONSISTENCY
                )

        self.conn.call(f"create {self.name}", create)
        self._chunks_ready = True

    # ---- schema -------------------------------------------------------------------

    def fields(self) -> dict[str, dict[str, Any]]:
        return dict(self.meta["fields"])

    def ensure_field(
        self, name: str, dim: int, encoder: dict[str, Any], *, space: str = TEXT
    ) -> None:
        current = self.meta["fields"]
        if field_exists(current, name, dim, encoder, space):
            return
        self._check_writable()
        check_field_name(name)
        if current:
            self.caps.require("multi_vector", self.uri)
        if self._chunks_ready:
            if len(self):
                raise StoreError(
                    f"collection {self.name} at {self.uri} holds documents with vector fields "
                    f"{sorted(current)}; Milvus cannot add field {name!r} to it "
                    "(index into a new collection)"
                )
            self.conn.call(f"drop {self.name}", lambda: self.client.drop_collection(self.name))
            self._chunks_ready = False
        current[name] = FieldSpec(space, int(dim), encoder).to_dict()
        self._save_meta(self.meta)

    def index_config(self) -> dict[str, Any] | None:
        return self.meta.get("index_config")

    def set_index_config(self, config: dict[str, Any]) -> None:
        self._check_writable()
        self.meta["index_config"] = config
        self._save_meta(self.meta)

    # ---- writing ------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"collection {self.name} at {self.uri} is open read-only")

    def write(self, batch: Batch) -> None:
        """Replace the batch's sources and upsert its documents (see the module notes)."""
        self._check_writable()
        rows = document_rows(
            batch, self.meta["fields"], self.analyzer, bm25=bool(self.meta.get("bm25"))
        )
        self._ensure_chunks()
        source_ids = [s.source_id for s in batch.sources]
        self._delete_chunks_where("source_id", source_ids)
        for start in range(0, len(rows), 1000):
            part = rows[start : start + 1000]
            self.conn.upsert("upsert documents", self.name, part)
        if batch.sources:
            sources = source_rows(batch.sources)
            self.conn.upsert("record sources", self._sources_name, sources)

    def _ids_where(self, column: str, values: Sequence[str]) -> list[str]:
        if not self._chunks_ready:
            return []
        out: list[str] = []
        for start in range(0, len(values), _IN_CHUNK):
            part = list(values[start : start + _IN_CHUNK])
            expr = f"{column} in [{', '.join(literal(v) for v in part)}]"
            out.extend(r["id"] for r in self.conn.query(self.name, expr, ["id"]))
        return out

    def _delete_chunks_where(self, column: str, values: Sequence[str]) -> list[str]:
        ids = self._ids_where(column, values)
        for start in range(0, len(ids), _IN_CHUNK):
            part = ids[start : start + _IN_CHUNK]
            self.conn.delete_ids("delete documents", self.name, part)
        return ids

    def delete_sources(self, source_ids: Sequence[str]) -> int:
        self._check_writable()
        removed = self._delete_chunks_where("source_id", list(source_ids))
        for start in range(0, len(source_ids), _IN_CHUNK):
            part = list(source_ids[start : start + _IN_CHUNK])
            self.conn.delete_ids("delete sources", self._sources_name, part)
        return len(removed)

    def delete(self, doc_ids: Sequence[str]) -> int:
        self._check_writable()
        return len(self._delete_chunks_where("id", list(doc_ids)))

    def checkpoint(self) -> None:
        """Seal what was written (Milvus keeps it durable either way). Milvus Lite searches
        unsealed rows by rebuilding their BM25 index on every query, so sealing after a
        bulk load is what makes its searches fast."""
        if not self.read_only and self._chunks_ready:
            self.conn.call("flush", lambda: self.client.flush(self.name))

    def store_blob(self, path: str | Path) -> str:
        """Copy a media file into the blob folder; returns its reference, relative to it."""
        return store_blob(self.blob_dir, path)

    @property
    def blob_root(self) -> Path:
        """Where media references resolve, as the store folder does for the embedded store."""
        return self.blob_dir

    @property
    def media_root(self) -> Path:
        return self.blob_dir

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()

    # ---- reading ------------------------------------------------------------------

    def __len__(self) -> int:
        if not self._chunks_ready:
            return 0
        return self._count(self.name, "")

    def _count(self, collection: str, expr: str) -> int:
        rows = self.conn.query(collection, expr, ["count(*)"])
        return int(rows[0]["count(*)"])

    def info(self) -> dict[str, Any]:
        by_modality = {}
        if self._chunks_ready:
            for m in Modality:
                n = self._count(self.name, f"modality == {literal(str(m))}")
                if n:
                    by_modality[str(m)] = n
        return {
            "uri": self.uri,
            "collection": self.name,
            "server": self.caps.server,
            "bm25": bool(self.meta.get("bm25")),
            "hybrid": self.caps.hybrid,
            "sources": self._count(self._sources_name, ""),
            "chunks": len(self),
            "by_modality": by_modality,
            "fields": self.fields(),
            "analyzer": self.meta["analyzer"],
            "blob_dir": str(self.blob_dir),
        }

    def source_hashes(self) -> dict[str, str]:
        return {
            r["source_id"]: r["content_hash"]
            for r in self.conn.iterate(self._sources_name, ["source_id", "content_hash"])
        }

    def sources(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        if self._chunks_ready:
            for r in self.conn.iterate(self.name, ["source_id"]):
                counts[r["source_id"]] = counts.get(r["source_id"], 0) + 1
        out = [
            {
                "source_id": r["source_id"],
                "path": r["path"] or None,
                "title": r["title"] or None,
                "content_hash": r["content_hash"],
                "chunks": counts.get(r["source_id"], 0),
            }
            for r in self.conn.iterate(
                self._sources_name, ["source_id", "path", "title", "content_hash"]
            )
        ]
        return sorted(out, key=lambda s: s["source_id"])

    def get(self, doc_ids: Sequence[str]) -> list[Document]:
        if not self._chunks_ready:
            return []
        found: dict[str, Document] = {}
        ids = list(doc_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            part = ids[start : start + _IN_CHUNK]
            expr = f"id in [{', '.join(literal(v) for v in part)}]"
            for r in self.conn.query(self.name, expr, DOC_FIELDS):
                found[r["id"]] = to_document(r)
        return [found[i] for i in ids if i in found]

    def iter_documents(self, batch: int = 1000) -> Iterator[tuple[Hashable, Document]]:
        if not self._chunks_ready:
            return
        for r in self.conn.iterate(self.name, DOC_FIELDS, batch):
            yield r["id"], to_document(r)

    def filter_keys(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        if not filters:
            return None
        if not self._chunks_ready:
            return np.asarray([], dtype=object)
        expr = to_milvus_expr(filters, exists=self.caps.exists)
        return np.asarray(
            [r["id"] for r in self.conn.iterate(self.name, ["id"], expr=expr)], object
        )

    def search_sparse(
        self,
        queries: Sequence[str],
        k: int,
        params: BM25Params,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        self.caps.require("bm25", self.uri)
        bm25 = self.meta.get("bm25")
        if not bm25:
            raise StoreError(f"collection {self.name} at {self.uri} was created without BM25")
        if params.method != "lucene":
            raise StoreError(
                f"Milvus's BM25 function scores Lucene BM25 only, not {params.method!r} "
                "(use the embedded store for other variants)"
            )
        if (params.k1, params.b) != (bm25["k1"], bm25["b"]):
            raise StoreError(
                f"collection {self.name} at {self.uri} scores BM25 with k1={bm25['k1']}, "
                f"b={bm25['b']}, fixed when it was built; asked for k1={params.k1}, b={params.b}"
            )
        texts = [query_terms(self.analyzer, q) for q in queries]
        out: list[Scored] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t]
        if not todo or not self._chunks_ready:
            return out
        expr = search_filter(filters, exists=self.caps.exists)
        results = search(
            self.conn, self.name, [texts[i] for i in todo], SPARSE, k, {"metric_type": "BM25"}, expr
        )
        sign = -1.0 if self.caps.bm25_negated else 1.0
        for i, hits in zip(todo, results, strict=True):
            out[i] = scored(hits, sign)
        return out

    def search_dense(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        if field not in self.meta["fields"]:
            raise StoreError(
                f"collection {self.name} at {self.uri} has no vector field {field!r} "
                "(index with it first)"
            )
        vecs = np.asarray(vectors, dtype=np.float32)
        if not self._chunks_ready or not len(vecs):
            return [[] for _ in range(len(vecs))]
        params = dense_params(self.ef_search, k)
        expr = search_filter(filters, exists=self.caps.exists, vector_field=field)
        results = search(self.conn, self.name, vecs.tolist(), VEC + field, k, params, expr)
        return [scored(hits) for hits in results]

    @property
    def server_hybrid(self) -> bool:  # type: ignore[override]
        return self.caps.hybrid and self.caps.bm25 and bool(self.meta.get("bm25"))

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
        """Server-side fusion of BM25 (on `queries`) and dense searches (one per field).

        Members are BM25 first (when `sparse`), then `vectors` in order; each retrieves
        `depth` candidates. RRF matches `mmrag.retrieve.fusion.rrf`; Milvus's weighted
        ranker normalises scores with arctan, not min-max, so it ranks differently from
        the embedded store's `weighted` fusion.
        """
        self.caps.require("hybrid", self.uri)
        expr = to_milvus_expr(filters, exists=self.caps.exists) if filters else None
        terms = None
        if sparse:
            self.caps.require("bm25", self.uri)
            terms = [query_terms(self.analyzer, q) or "_" for q in queries]
        for field in vectors:
            if field not in self.meta["fields"]:
                raise StoreError(f"collection {self.name} has no vector field {field!r}")
        reqs = hybrid_members(terms, vectors, depth=depth, ef_search=self.ef_search, expr=expr)
        if not reqs:
            raise ConfigError("hybrid search needs BM25 or at least one vector field")
        fused = ranker(fusion, weights, rrf_k, len(reqs))
        if not self._chunks_ready:
            return [[] for _ in queries]
        results = hybrid_search(self.conn, self.name, reqs, fused, k)
        return [scored(hits) for hits in results]


__all__ = ["DEFAULT_DENSE_INDEX", "MilvusStore"]
