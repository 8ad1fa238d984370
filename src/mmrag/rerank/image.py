"""Multimodal reranking hook: rescore image (and page) candidates with an image–text encoder.

The query (its text, its image, or both summed, as in cross-modal retrieval) and each
candidate's image are embedded in the encoder's shared space and scored by cosine. A
text candidate is scored by its text in the same space. A candidate whose image cannot
be found or read is left unscored (it follows the scored ones) and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import IngestError
from mmrag.models.image import VISUAL, ImageTextEncoder, load_image_encoder, query_vectors
from mmrag.rerank.base import Reranker
from mmrag.types import Document, Hit, Query, StageReport

MediaResolver = Callable[[Document], Path | None]


def local_media(root: str | Path | None = None) -> MediaResolver:
    """Find a document's image: inside the store folder `root` when given (never outside
    it), else its `media` or `source` as a path on disk."""
    if root is not None:
        from mmrag.index.media import media_resolver

        return media_resolver(root)

    def resolve(doc: Document) -> Path | None:
        for ref in (doc.media, doc.source):
            if ref and Path(ref).is_file():
                return Path(ref)
        return None

    return resolve


class ImageReranker(Reranker):
    """Rescore with an image–text encoder (default: the packaged offline ConSE encoder)."""

    name = "image"

    def __init__(
        self,
        encoder: str = "conse",
        *,
        params: dict[str, Any] | None = None,
        media_root: str | None = None,
        depth: int | None = None,
        image_encoder: ImageTextEncoder | None = None,
    ) -> None:
        super().__init__(depth)
        self.encoder = image_encoder or load_image_encoder(encoder, **(params or {}))
        self.media: MediaResolver = local_media(media_root)

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        q = query_vectors(self.encoder, [query])[0]
        scores = np.full(len(hits), np.nan)
        images: list[tuple[int, Path]] = []
        texts: list[tuple[int, str]] = []
        for i, hit in enumerate(hits):
            if hit.doc.modality in VISUAL:
                path = self.media(hit.doc)
                if path is None:
                    report.errors.append(f"{hit.doc.id}: image not found")
                else:
                    images.append((i, path))
            elif hit.text.strip():
                texts.append((i, hit.text))
        if images:
            for i, vec in self._image_vectors(images, hits, report).items():
                scores[i] = float(vec @ q)
            report.model_calls += 1
        if texts:
            vecs = self.encoder.encode_texts([t for _, t in texts])
            scores[[i for i, _ in texts]] = vecs @ q
            report.model_calls += 1
        return scores

    def _image_vectors(
        self, images: list[tuple[int, Path]], hits: list[Hit], report: StageReport
    ) -> dict[int, np.ndarray]:
        """Vectors by candidate index; one unreadable file costs only its own candidate."""
        try:
            vecs = self.encoder.encode_images([p for _, p in images])
            return {i: v for (i, _), v in zip(images, vecs, strict=True)}
        except IngestError:
            pass  # find which files fail, one at a time
        out = {}
        for i, path in images:
            try:
                out[i] = self.encoder.encode_images([path])[0]
            except IngestError as exc:
                report.errors.append(f"{hits[i].doc.id}: {exc}")
        return out
