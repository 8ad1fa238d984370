"""Document pages by late interaction (ColPali style): pooled candidates, MaxSim scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrag.index.base import Store
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.retrieve.crossmodal import with_modalities
from mmrag.types import Modality, Query, Ranked, StageReport, timed


class PageRetriever(Retriever):
    """ColPali-style page search: pooled-vector candidates, then exact MaxSim rescoring.

    The store's page field gives `depth` candidates by the mean-pooled query against
    mean-pooled pages; their token matrices come from the side table and are scored
    by MaxSim, which is the final score.
    """

    name = "page-maxsim"

    def __init__(
        self,
        store: Store,
        encoder: Any,
        table: Any,
        field: str = "page",
        depth: int = 100,
    ) -> None:
        self.store, self.encoder, self.table = store, encoder, table
        self.field, self.depth = field, depth

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        from mmrag.index.multivector import pooled
        from mmrag.models.page_encoders import maxsim

        qs = [as_query(q) for q in queries]
        matrices = self.encoder.encode_queries([q.text for q in qs])
        first = pooled(matrices)
        out = []
        for q, query, vec in zip(qs, matrices, first, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                filters = with_modalities(q.filters, (Modality.PAGE, Modality.IMAGE))
                (cands,) = self.store.search_dense(self.field, vec[None, :], self.depth, filters)
                stored = self.table.get([d.id for d, _ in cands])
                docs = [d for d, _ in cands if d.id in stored]
                scores = maxsim(query, [stored[d.id] for d in docs]) if docs else np.zeros(0)
                order = np.argsort(-scores, kind="stable")[:k]
                scored = [(docs[i], float(scores[i])) for i in order]
            report.n_in = len(cands)
            out.append(to_ranked(q, scored, report))
        return out
