"""Image files (.jpg .png .webp .gif .bmp .tiff) -> one IMAGE document each.

The document points at the file (`media`), carries the image's OCR text when it has
any (receipts, slides, screenshots, scans) so BM25 and the text encoder can find it,
and gets its image-space vector from the image field embedder at index time.

The content decides the format, not the suffix: a PNG named .jpg is read as the PNG it
is (and says so in its metadata); a text file named .jpg is refused by the sniffing in
`files.check_content`. Every image goes through `open_image`: decompression-bomb
guard, EXIF orientation, truncation detected.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mmrag.errors import ConfigError, IngestError
from mmrag.ingest.files import IMAGE_KINDS, IMAGE_SUFFIXES, Loaded, Loader, RawFile
from mmrag.models.image import MAX_PIXELS, open_image, pil_image
from mmrag.types import Document, Modality

if TYPE_CHECKING:
    from PIL import Image

OCR_MODES = ("auto", "always", "never")
__all__ = ["IMAGE_KINDS", "IMAGE_SUFFIXES", "load_image", "make_image_loader"]


def image_document(
    raw: RawFile, image: Image.Image, text: str, metadata: dict[str, Any]
) -> Document:
    source_id = str(raw.path)
    return Document(
        id=f"{source_id}#image",
        text=text,
        modality=Modality.IMAGE,
        source_id=source_id,
        source=str(raw.path),
        media=str(raw.path),
        metadata={"title": raw.path.stem, "width": image.width, "height": image.height, **metadata},
    )


def make_image_loader(ocr: str = "auto", max_pixels: int = MAX_PIXELS) -> Loader:
    """A loader with its own settings, for a loader table's IMAGE_SUFFIXES
    (`indexing.build.loader_table` makes one from an IndexConfig).

    `ocr`: "auto" reads images whose text detector finds text, "always" reads every
    image, "never" skips OCR.
    """
    if ocr not in OCR_MODES:
        raise ConfigError(f"unknown OCR mode {ocr!r}; choose one of {OCR_MODES}")

    def load(raw: RawFile) -> Loaded:
        header = open_header(raw)
        image = open_image(raw.data, max_pixels=max_pixels)
        metadata: dict[str, Any] = {"format": header.format, "suffix": raw.suffix}
        frames = getattr(header, "n_frames", 1)
        if frames > 1:
            metadata["frames"] = frames  # animated: the first frame stands for the file
        text = ""
        if ocr != "never":
            from mmrag.ingest.ocr import default_ocr

            engine = default_ocr()
            if ocr == "always" or engine.has_text(image):
                text = engine.read(image).text
                metadata["ocr"] = True
        doc = image_document(raw, image, text, metadata)
        # No text sections: the OCR text lives on the image document itself, so a hit
        # on the text is a hit on the image.
        source = raw.source(raw.path.stem, [], metadata)
        return Loaded([replace(source, media=[doc])])

    return load


def open_header(raw: RawFile) -> Image.Image:
    """The image's header (format, frame count) without decoding pixels."""
    Image = pil_image()
    try:
        return Image.open(io.BytesIO(raw.data))
    except Image.DecompressionBombError as exc:
        raise IngestError(str(raw.path), f"refused as a decompression bomb: {exc}") from exc
    except OSError as exc:  # UnidentifiedImageError is an OSError
        raise IngestError(str(raw.path), f"not a readable image: {exc}") from exc


def load_image(raw: RawFile) -> Loaded:
    """The default image loader (OCR "auto"), registered for IMAGE_SUFFIXES in files.py."""
    return _default(raw)


_default = make_image_loader()
