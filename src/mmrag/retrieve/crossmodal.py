"""Search an image-text field: text -> image, image -> image, image -> text.

- `CrossModalRetriever`: dense search in an image–text field; the query is text, an
  image, or both (their vectors are summed), results limited to some modalities.
- `ImageToTextRetriever`: an image query against text documents, in the text field
  when that field lives in the encoder's text space (ConSE/LiT with use-multilingual),
  else in the image field's text documents (indexed with `texts=True`).

OCR text -> image is ocr_text.py, the fusion of modalities multimodal.py, pages by late
interaction pages.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mmrag.errors import ConfigError
from mmrag.index.base import Store
from mmrag.index.fields import IMAGE_TEXT, FieldSpec, field_spec, load_encoder
from mmrag.models.image import VISUAL, ImageTextEncoder, query_vectors
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.types import Modality, Query, Ranked, StageReport, timed


def encoder_for_image_field(store: Store, field: str) -> ImageTextEncoder:
    spec = field_spec(store, field, IMAGE_TEXT, hint="index with an image encoder")
    encoder: ImageTextEncoder = load_encoder(spec)
    return encoder


def with_modalities(
    filters: dict[str, Any] | None, modalities: Sequence[Modality] | None
) -> dict[str, Any] | None:
    """A query's filters, narrowed to some modalities."""
    if not modalities:
        return filters
    only = {"modality": {"$in": [str(m) for m in modalities]}}
    return {"$and": [filters, only]} if filters else only


class CrossModalRetriever(Retriever):
    """Text and/or image queries against an image–text field (text → image, image → image)."""

    name = "crossmodal"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def __init__(
        self,
        store: Store,
        field: str = "image",
        encoder: ImageTextEncoder | None = None,
        modalities: Sequence[Modality] | None = VISUAL,
    ) -> None:
        self.store = store
        self.field = field
        self.encoder = encoder or encoder_for_image_field(store, field)
        self.modalities = tuple(modalities) if modalities else None

    def _search(self, qs: list[Query], vectors: np.ndarray, field: str, k: int) -> list[Ranked]:
        out = []
        for q, vec in zip(qs, vectors, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                filters = with_modalities(q.filters, self.modalities)
                (scored,) = self.store.search_dense(field, vec[None, :], k, filters)
            out.append(to_ranked(q, scored, report))
        return out

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        return self._search(qs, query_vectors(self.encoder, qs), self.field, k)


class ImageToTextRetriever(CrossModalRetriever):
    """Image queries → text documents (captions, chunks, transcripts)."""

    name = "image-text"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(
        self,
        store: Store,
        field: str = "image",
        encoder: ImageTextEncoder | None = None,
        text_field: str = "text",
    ) -> None:
        super().__init__(store, field, encoder, modalities=(Modality.TEXT,))
        fields = store.fields()
        text_space = self.encoder.info().get("text")
        if text_field in fields and text_space is not None:
            if FieldSpec.from_dict(fields[text_field]).identity == text_space:
                # The image vectors live in this text encoder's space: search it directly.
                self.field = text_field

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        if any(not q.image for q in qs):
            raise ConfigError("image → text search needs an image in every query")
        images_only = [Query(text="", id=q.id, image=q.image, filters=q.filters) for q in qs]
        ranked = self._search(qs, query_vectors(self.encoder, images_only), self.field, k)
        return ranked


# ---- OCR text -----------------------------------------------------------------------
