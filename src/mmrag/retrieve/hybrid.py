"""Hybrid retrieval: run several retrievers and fuse their lists."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from mmrag.errors import ConfigError
from mmrag.index.base import Store
from mmrag.retrieve.base import CandidateRetriever, Found, Retriever, as_query
from mmrag.retrieve.dense import DenseRetriever
from mmrag.retrieve.fusion import contributions, fuse_hits, fuse_keys
from mmrag.retrieve.sparse import BM25Retriever
from mmrag.types import Hit, Query, Ranked, StageReport, timed


class HybridRetriever(Retriever):
    """BM25 + dense by default, fused by RRF; `fusion="weighted"` for a normalised weighted sum.

    Each member retrieves `depth` candidates so that a document ranked low by one
    member can still be lifted by the other. Members that search this store's own
    indexes are fused on row keys, and documents are loaded for the final k only.
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
        self.store = store
        self.retrievers = list(retrievers or [BM25Retriever(store), DenseRetriever(store)])
        self.weights = list(weights or [1.0] * len(self.retrievers))
        if len(self.weights) != len(self.retrievers):
            raise ConfigError("hybrid: one weight per retriever")
        if fusion not in ("rrf", "weighted"):
            raise ConfigError(f"hybrid: unknown fusion {fusion!r}; use rrf or weighted")
        self.fusion, self.depth, self.rrf_k, self.normalise = fusion, depth, rrf_k, normalise

    def _contributions(self, scores: list[list[float]]) -> list[list[float]]:
        return contributions(self.fusion, scores, self.weights, self.rrf_k, self.normalise)

    def _by_keys(self) -> list[CandidateRetriever] | None:
        members = [
            r
            for r in self.retrievers
            if isinstance(r, CandidateRetriever) and r.store is self.store
        ]
        return members if len(members) == len(self.retrievers) else None

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        depth = max(k, self.depth)
        members = self._by_keys()
        if members is not None:
            per_key_member = [m.candidates_many(qs, depth) for m in members]
            return [
                self._fuse_found(q, [pm[i] for pm in per_key_member], k) for i, q in enumerate(qs)
            ]
        per_member = [r.retrieve_many(qs, depth) for r in self.retrievers]
        return [self._fuse_ranked(q, [pm[i] for pm in per_member], k) for i, q in enumerate(qs)]

    def _fuse_found(self, query: Query, found: list[Found], k: int) -> Ranked:
        report = StageReport(stage="retrieve", name=self.name)
        with timed(report):
            union = list(dict.fromkeys(key for c, _ in found for key in c.keys))
            carried = {key: d for c, _ in found if c.docs for key, d in c.docs.items()}
            ids = (
                {key: d.id for key, d in carried.items()}
                if len(carried) == len(union)
                else self.store.candidate_ids(union)
            )
            # Keys whose document went meanwhile leave the lists before ranks are taken.
            keys = [[key for key in c.keys if key in ids] for c, _ in found]
            scores = [
                [s for key, s in zip(c.keys, c.scores, strict=True) if key in ids] for c, _ in found
            ]
            contrib = self._contributions(scores)
            fused = fuse_keys(keys, scores, contrib, tie_key=ids.__getitem__)[:k]
            top: list[Hashable] = [f.key for f in fused]
            docs = {key: carried[key] for key in top if key in carried}
            missing = [key for key in top if key not in docs]
            if missing:
                docs.update(self.store.candidate_documents(missing))
            names = [r.name for _, r in found]
            hits = [
                Hit(
                    doc=docs[f.key],
                    score=f.score,
                    scores={names[i]: s for i, s in sorted(f.members.items())},
                )
                for f in fused
                if f.key in docs
            ]
        report.seconds += sum(r.seconds for _, r in found)
        report.n_in = sum(len(ks) for ks in keys)
        report.n_out = len(hits)
        report.extra = {r.name: len(ks) for (_, r), ks in zip(found, keys, strict=True)}
        return Ranked(query=query, hits=hits, reports=[report])

    def _fuse_ranked(self, query: Query, lists: list[Ranked], k: int) -> Ranked:
        report = StageReport(stage="retrieve", name=self.name)
        with timed(report):
            hit_lists = [r.hits for r in lists]
            fused = fuse_hits(
                hit_lists, self._contributions([[h.score for h in hits] for hits in hit_lists])
            )
        report.seconds += sum(s.seconds for r in lists for s in r.reports)
        report.n_in = sum(len(h) for h in hit_lists)
        report.n_out = min(k, len(fused))
        report.extra = {r.reports[0].name: len(r.hits) for r in lists if r.reports}
        return Ranked(query=query, hits=fused[:k], reports=[report])
