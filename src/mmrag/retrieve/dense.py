"""Dense bi-encoder retrieval over a vector field, with the encoder the field was built with."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.errors import StoreError
from mmrag.index.base import Store
from mmrag.models.text import TextEncoder, load_text_encoder
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.types import Query, Ranked, StageReport, timed


def encoder_for_field(store: Store, field: str) -> TextEncoder:
    fields = store.fields()
    if field not in fields:
        raise StoreError(f"the store has no vector field {field!r}; index with a dense encoder")
    info = dict(fields[field]["encoder"])
    kind = info.pop("kind")
    return load_text_encoder(kind, model=info["model"])


class DenseRetriever(Retriever):
    name = "dense"

    def __init__(
        self, store: Store, field: str = "text", encoder: TextEncoder | None = None
    ) -> None:
        self.store = store
        self.field = field
        self.encoder = encoder or encoder_for_field(store, field)

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        encode = StageReport(stage="retrieve", name="encode")
        with timed(encode):
            vectors = self.encoder.encode_queries([q.text for q in qs])
        share = encode.seconds / max(len(qs), 1)
        out = []
        for q, vec in zip(qs, vectors, strict=True):
            report = StageReport(stage="retrieve", name=self.name, seconds=share)
            with timed(report):
                (scored,) = self.store.search_dense(self.field, vec[None, :], k, q.filters)
                out.append(to_ranked(q, scored, report))
        return out
