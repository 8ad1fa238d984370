"""Searches of a store's documents collection: their requests, the calls, hits as `Scored`.

BM25 searches the analysed query text (mmrag's `Analyzer`, as at write time); a dense
search scores by inner product and covers only the documents that have a vector in its
field. A hybrid search sends one request per member and lets the server fuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.index.analyzer import Analyzer
from mmrag.index.base import Scored
from mmrag.index.milvus.client import Connection
from mmrag.index.milvus.filters import to_milvus_expr
from mmrag.index.milvus.rows import to_document
from mmrag.index.milvus.schema import DOC_FIELDS, HAS, MAX_TOPK, SPARSE, VEC


def query_terms(analyzer: Analyzer, query: str) -> str:
    """A query as the BM25 function reads it: the analyser's terms, space-separated."""
    return " ".join(analyzer.tokens(query))


def dense_params(ef_search: int, k: int) -> dict[str, Any]:
    return {"metric_type": "IP", "params": {"ef": max(ef_search, 2 * k)}}


def search_filter(
    filters: dict[str, Any] | None, *, exists: bool, vector_field: str | None = None
) -> str:
    """The filter expression of one search: documents with a vector in `vector_field`
    (when given) that match `filters`; "" for all documents."""
    parts = [f"{HAS}{vector_field} == true"] if vector_field else []
    if filters:
        parts.append(to_milvus_expr(filters, exists=exists))
    return " and ".join(parts)


def search(
    conn: Connection,
    collection: str,
    data: list[Any],
    anns_field: str,
    k: int,
    search_params: dict[str, Any],
    expr: str,
) -> list[list[dict[str, Any]]]:
    return conn.call(
        f"search {anns_field}",
        lambda: list(
            conn.client.search(
                collection,
                data=data,
                anns_field=anns_field,
                limit=min(k, MAX_TOPK),
                filter=expr,
                search_params=search_params,
                output_fields=DOC_FIELDS,
                **conn.consistency(collection),
            )
        ),
    )


def hybrid_members(
    terms: list[str] | None,
    vectors: dict[str, np.ndarray],
    *,
    depth: int,
    ef_search: int,
    expr: str | None,
) -> list[Any]:
    """One `AnnSearchRequest` per member: BM25 on `terms` first (unless None), then one
    per vector field in order; each retrieves `depth` candidates that match `expr`."""
    from pymilvus import AnnSearchRequest

    reqs = []
    if terms is not None:
        reqs.append(
            AnnSearchRequest(
                data=terms,
                anns_field=SPARSE,
                param={"metric_type": "BM25"},
                limit=min(depth, MAX_TOPK),
                expr=expr,
            )
        )
    for field, vecs in vectors.items():
        member = f"{HAS}{field} == true" + (f" and {expr}" if expr else "")
        reqs.append(
            AnnSearchRequest(
                data=np.asarray(vecs, dtype=np.float32).tolist(),
                anns_field=VEC + field,
                param=dense_params(ef_search, depth),
                limit=min(depth, MAX_TOPK),
                expr=member,
            )
        )
    return reqs


def ranker(fusion: str, weights: Sequence[float] | None, rrf_k: float, members: int) -> Any:
    """The server-side fusion: `rrf` (with `rrf_k`) or `weighted` (one weight per member,
    all 1 by default)."""
    from pymilvus import RRFRanker, WeightedRanker

    if fusion == "rrf":
        return RRFRanker(rrf_k)
    if fusion == "weighted":
        return WeightedRanker(*(weights or [1.0] * members))
    raise ConfigError(f"hybrid: unknown fusion {fusion!r}; use rrf or weighted")


def hybrid_search(
    conn: Connection, collection: str, reqs: list[Any], fusion: Any, k: int
) -> list[list[dict[str, Any]]]:
    return conn.call(
        "hybrid search",
        lambda: conn.client.hybrid_search(
            collection,
            reqs=reqs,
            ranker=fusion,
            limit=min(k, MAX_TOPK),
            output_fields=DOC_FIELDS,
            **conn.consistency(collection),
        ),
    )


def scored(hits: list[dict[str, Any]], sign: float = 1.0) -> Scored:
    """One query's hits as (document, score); `sign` -1 undoes negated BM25 distances."""
    return [(to_document(h["entity"]), sign * float(h["distance"])) for h in hits]
