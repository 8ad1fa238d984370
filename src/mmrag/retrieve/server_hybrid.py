"""Hybrid search fused by the store's server: BM25 and dense in one request.

A backend that fuses itself (Milvus >= 2.5, Milvus Lite: `Store.server_hybrid`) returns
the fused list from one round trip instead of two candidate lists of `depth` each.
RRF ranks as `HybridRetriever`'s client-side RRF does (tests/scale/test_milvus_store.py);
Milvus's weighted fusion normalises scores its own way, so it is not offered here.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.errors import ConfigError
from mmrag.index.base import Store
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.retrieve.dense import encoder_for_field
from mmrag.types import Query, Ranked, StageReport, timed


class ServerHybridRetriever(Retriever):
    name = "server-hybrid"

    def __init__(
        self, store: Store, field: str = "text", depth: int = 100, rrf_k: float = 60.0
    ) -> None:
        if not store.server_hybrid:
            raise ConfigError(
                f"{type(store).__name__} does not fuse searches itself; use the hybrid retriever"
            )
        self.store, self.field, self.depth, self.rrf_k = store, field, depth, rrf_k
        self.encoder = encoder_for_field(store, field)

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        qs = [as_query(q) for q in queries]
        encode = StageReport(stage="retrieve", name="encode")
        with timed(encode):
            vectors = self.encoder.encode_queries([q.text for q in qs])
        out = []
        # one request per query: the server applies one filter to a whole batch
        for i, q in enumerate(qs):
            report = StageReport(stage="retrieve", name=self.name, seconds=encode.seconds / len(qs))
            with timed(report):
                (scored,) = self.store.search_hybrid(
                    [q.text],
                    {self.field: vectors[i : i + 1]},
                    k,
                    rrf_k=self.rrf_k,
                    depth=max(k, self.depth),
                    filters=q.filters,
                )
            out.append(to_ranked(q, scored, report))
        return out
