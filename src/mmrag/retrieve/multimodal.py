"""One ranked list over every modality, fused from modality-specific retrievers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from mmrag.errors import ConfigError
from mmrag.index.base import Store
from mmrag.index.fields import IMAGE_TEXT, FieldSpec
from mmrag.retrieve.base import Retriever, as_query
from mmrag.retrieve.calibration import Platt, calibration_for
from mmrag.retrieve.crossmodal import CrossModalRetriever
from mmrag.retrieve.fusion import rrf
from mmrag.types import Hit, Query, Ranked, StageReport, timed


def _zscore_probability(scores: np.ndarray) -> np.ndarray:
    """Without a fitted calibration: how far a score stands above its list, squashed."""
    if len(scores) < 2 or scores.std() == 0:
        return np.full(len(scores), 0.5)
    return 1 / (1 + np.exp(-(scores - scores.mean()) / scores.std()))


class MultimodalRetriever(Retriever):
    """One ranked list over every modality, fused from modality-specific retrievers.

    Members that need text are skipped for image-only queries. `fusion="rrf"` ranks by
    reciprocal rank fusion; `fusion="calibrated"` maps each member's scores to a
    probability of relevance (its `Platt` calibration from `calibrations`, else the one
    shipped for its field's encoder, else a z-score squashed by a sigmoid) and combines a
    document's probabilities by noisy-OR, so a document found by two modalities ranks
    above one found by either alone. `fusion="auto"` (default) is calibrated when every
    member has a fitted calibration, RRF otherwise: ranks alone cannot tell a photo that
    matches the query from the best of a list of unrelated text.
    """

    name = "multimodal"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def __init__(
        self,
        store: Store,
        retrievers: Sequence[Retriever] | None = None,
        fusion: str = "auto",
        calibrations: dict[str, Platt] | None = None,
        weights: Sequence[float] | None = None,
        depth: int = 50,
        rrf_k: float = 60.0,
    ) -> None:
        self.retrievers = list(retrievers) if retrievers else self._default_members(store)
        if not self.retrievers:
            raise ConfigError("multimodal search needs at least one member retriever")
        if fusion not in ("auto", "rrf", "calibrated"):
            raise ConfigError(f"unknown fusion {fusion!r}; use auto, rrf or calibrated")
        self.weights = list(weights or [1.0] * len(self.retrievers))
        if len(self.weights) != len(self.retrievers):
            raise ConfigError("multimodal: one weight per retriever")
        self.calibrations = dict(calibrations or {})
        # per member: (calibration, the key in Hit.scores holding the raw score it calibrates)
        self._calibrated_by = [self._member_calibration(store, m) for m in self.retrievers]
        if fusion == "auto":
            fusion = "calibrated" if all(c for c, _ in self._calibrated_by) else "rrf"
        self.fusion, self.depth, self.rrf_k = fusion, depth, rrf_k

    def _member_calibration(self, store: Store, member: Retriever) -> tuple[Platt | None, str]:
        from mmrag.retrieve.hybrid import HybridRetriever

        if member.name in self.calibrations:
            return self.calibrations[member.name], member.name
        fields = store.fields()
        if isinstance(member, CrossModalRetriever) and member.field in fields:
            return calibration_for(fields[member.field]), member.name
        if isinstance(member, HybridRetriever) and "text" in fields:
            # RRF scores carry no confidence; the dense member's cosine does
            return calibration_for(fields["text"]), "dense"
        return None, member.name

    @staticmethod
    def _default_members(store: Store) -> list[Retriever]:
        from mmrag.retrieve.hybrid import HybridRetriever
        from mmrag.retrieve.sparse import BM25Retriever

        fields = store.fields()
        members: list[Retriever] = [
            HybridRetriever(store) if "text" in fields else BM25Retriever(store)
        ]
        for name, record in fields.items():
            if name != "text" and FieldSpec.from_dict(record).space == IMAGE_TEXT:
                members.append(CrossModalRetriever(store, name))
        return members

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        depth = max(k, self.depth)
        per_member: list[dict[int, Ranked]] = []
        for member in self.retrievers:
            usable = [i for i, q in enumerate(qs) if member.takes(q)]
            results = member.retrieve_many([qs[i] for i in usable], depth) if usable else []
            per_member.append(dict(zip(usable, results, strict=True)))
        out = []
        for i, q in enumerate(qs):
            report = StageReport(stage="retrieve", name=self.name)
            lists, weights, members = [], [], []
            for m, (results, w) in enumerate(zip(per_member, self.weights, strict=True)):
                if i in results:
                    lists.append(results[i].hits)
                    weights.append(w)
                    members.append(m)
                    report.seconds += sum(s.seconds for s in results[i].reports)
            with timed(report):
                if self.fusion == "rrf":
                    fused = rrf(lists, weights, self.rrf_k)
                else:
                    fused = self._calibrated(lists, weights, members)
            report.n_in = sum(len(h) for h in lists)
            report.n_out = min(k, len(fused))
            names = [self.retrievers[m].name for m in members]
            report.extra = {"members": names, "fusion": self.fusion}
            out.append(Ranked(query=q, hits=fused[:k], reports=[report]))
        return out

    def _calibrated(
        self, lists: list[list[Hit]], weights: list[float], members: list[int]
    ) -> list[Hit]:
        miss: dict[str, float] = {}  # doc id -> probability that every list is wrong
        best: dict[str, Hit] = {}
        for hits, w, m in zip(lists, weights, members, strict=True):
            calibration, key = self._calibrated_by[m]
            if not all(c for c, _ in self._calibrated_by):
                # a fitted probability and a z-score are not on one scale: z-score all
                calibration = None
            raw = np.array([h.scores.get(key, h.score) for h in hits], np.float64)
            probs = calibration(raw) if calibration else _zscore_probability(raw)
            for hit, p in zip(hits, probs, strict=True):
                p = min(1.0, max(0.0, w * float(p)))
                miss[hit.doc.id] = miss.get(hit.doc.id, 1.0) * (1 - p)
                if hit.doc.id in best:
                    best[hit.doc.id].scores.update(hit.scores)
                else:
                    best[hit.doc.id] = Hit(doc=hit.doc, score=0.0, scores=dict(hit.scores))
        for doc_id, hit in best.items():
            hit.score = 1 - miss[doc_id]
        return sorted(best.values(), key=lambda h: (-h.score, h.doc.id))
