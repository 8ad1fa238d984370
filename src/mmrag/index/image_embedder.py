"""The image-space field: images and document pages embedded by an image–text encoder.

Text documents can join the same field (`texts=True`): their text is embedded by the
encoder's text tower, which is what image → text search needs when the store's text
field uses another model. With the ConSE/LiT encoders the image space *is* the
multilingual USE space, so a text field built with use-multilingual already serves
(see retrieve/crossmodal.py) and `texts` can stay off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.embedders import FieldEmbedder
from mmrag.index.fields import IMAGE_TEXT
from mmrag.models.image import ImageTextEncoder
from mmrag.types import Document, Modality

if TYPE_CHECKING:
    from PIL import Image

# How a document of each modality becomes a picture; other helpers may add theirs
# (e.g. a video shot's keyframe) with `register_picture`.
PictureOf = Callable[[Document], "Image.Image | str"]


def _image_file(doc: Document) -> str:
    if not doc.media:
        raise IngestError(doc.id, "an image document without a media path")
    return doc.media


def _page_picture(doc: Document) -> Image.Image:
    from mmrag.media.pdf_render import render_page

    if not doc.media or doc.span is None or doc.span.page is None:
        raise IngestError(doc.id, "a page document needs its PDF (media) and page (span.page)")
    return render_page(doc.media, doc.span.page)


PICTURES: dict[Modality, PictureOf] = {Modality.IMAGE: _image_file, Modality.PAGE: _page_picture}


def register_picture(modality: Modality, picture: PictureOf) -> None:
    PICTURES[modality] = picture


class ImageFieldEmbedder(FieldEmbedder):
    """Embeds image and page documents (and optionally text) into an image–text space."""

    space: ClassVar[str] = IMAGE_TEXT

    def __init__(
        self,
        encoder: ImageTextEncoder,
        field: str = "image",
        modalities: Sequence[Modality] = (Modality.IMAGE, Modality.PAGE),
        texts: bool = False,
        batch_size: int = 16,
    ) -> None:
        self.encoder = encoder
        self.field = field
        self.dim = encoder.dim
        self.modalities = frozenset(modalities)
        self.texts = texts
        self.batch_size = batch_size

    def info(self) -> dict[str, Any]:
        return self.encoder.info()

    def _is_picture(self, doc: Document) -> bool:
        return doc.modality in self.modalities and doc.modality in PICTURES

    def accepts(self, doc: Document) -> bool:
        if self._is_picture(doc):
            return True
        return self.texts and doc.modality is Modality.TEXT and bool(doc.text.strip())

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        pictures = [i for i, d in enumerate(docs) if self._is_picture(d)]
        texts = [i for i, d in enumerate(docs) if not self._is_picture(d)]
        # Rendered pages are large: make pictures one batch at a time.
        for start in range(0, len(pictures), self.batch_size):
            part = pictures[start : start + self.batch_size]
            images = [PICTURES[docs[i].modality](docs[i]) for i in part]
            out[part] = self.encoder.encode_images(images, batch_size=self.batch_size)
        if texts:
            out[texts] = self.encoder.encode_texts([docs[i].text for i in texts])
        return out
