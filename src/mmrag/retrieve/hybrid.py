"""Hybrid retrieval: run several retrievers and fuse their lists."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.errors import ConfigError
from mmrag.index.base import Store
from mmrag.retrieve.base import Retriever, as_query
from mmrag.retrieve.dense import DenseRetriever
from mmrag.retrieve.fusion import rrf, weighted
from mmrag.retrieve.sparse import BM25Retriever
from mmrag.types import Query, Ranked, StageReport, timed


class HybridRetriever(Retriever):
    """BM25 + dense by default, fused by RRF; `fusion="weighted"` for a normalised weighted sum.

    Each member retrieves `depth` candidates so that a document ranked low by one
    member can still be lifted by the other.
    """

    name = "hybrid"

    def __init__(
        self,
        store: Store,
        retrievers: Sequence[Retriever] | None = None,
        fusion: str = "rrf",
        weights: Sequence[float] | None = None,
        depth: int = 100,
        rrf_k: float = 60.0,
        normalise: str = "minmax",
    ) -> None:
        self.retrievers = list(retrievers or [BM25Retriever(store), DenseRetriever(store)])
        self.weights = list(weights or [1.0] * len(self.retrievers))
        if len(self.weights) != len(self.retrievers):
            raise ConfigError("hybrid: one weight per retriever")
        if fusion not in ("rrf", "weighted"):
            raise ConfigError(f"hybrid: unknown fusion {fusion!r}; use rrf or weighted")
        self.fusion, self.depth, self.rrf_k, self.normalise = fusion, depth, rrf_k, normalise

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        depth = max(k, self.depth)
        per_member = [r.retrieve_many(qs, depth) for r in self.retrievers]
        out = []
        for i, q in enumerate(qs):
            lists = [member[i] for member in per_member]
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                hit_lists = [r.hits for r in lists]
                if self.fusion == "rrf":
                    fused = rrf(hit_lists, self.weights, self.rrf_k)
                else:
                    fused = weighted(hit_lists, self.weights, self.normalise)
            report.seconds += sum(s.seconds for r in lists for s in r.reports)
            report.n_in = sum(len(h) for h in hit_lists)
            report.n_out = min(k, len(fused))
            report.extra = {r.reports[0].name: len(r.hits) for r in lists if r.reports}
            out.append(Ranked(query=q, hits=fused[:k], reports=[report]))
        return out
