"""Dense bi-encoder retrieval over a vector field, with the encoder the field was built with."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.index.base import Store
from mmrag.index.fields import TEXT, field_spec, load_encoder
from mmrag.models.text import TextEncoder
from mmrag.retrieve.base import CandidateRetriever, Found
from mmrag.types import Query, StageReport, timed


def encoder_for_field(store: Store, field: str) -> TextEncoder:
    """The text encoder a field was built with, with every parameter it was built with."""
    spec = field_spec(store, field, TEXT, hint="index with a dense encoder")
    encoder: TextEncoder = load_encoder(spec)
    return encoder


class DenseRetriever(CandidateRetriever):
    name = "dense"

    def __init__(
        self, store: Store, field: str = "text", encoder: TextEncoder | None = None
    ) -> None:
        self.store = store
        self.field = field
        self.encoder = encoder or encoder_for_field(store, field)

    def candidates_many(self, queries: Sequence[Query], k: int) -> list[Found]:
        encode = StageReport(stage="retrieve", name="encode")
        with timed(encode):
            vectors = self.encoder.encode_queries([q.text for q in queries])
        share = encode.seconds / max(len(queries), 1)
        out = []
        for q, vec in zip(queries, vectors, strict=True):
            report = StageReport(stage="retrieve", name=self.name, seconds=share)
            with timed(report):
                (found,) = self.store.dense_candidates(self.field, vec[None, :], k, q.filters)
            out.append((found, report))
        return out
