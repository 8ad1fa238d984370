"""PDF pages as images, rendered on demand by pypdfium2: for OCR of scanned pages (ingest)
and for embedding page documents, which point at their PDF and page (index)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pypdfium2 as pdfium

from mmrag.errors import IngestError
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

# Rendering resolution for embedding (page retrievers resize to ~448-1024 px anyway).
EMBED_DPI = 100
# A page rendered larger than this many pixels is rendered at a lower scale instead
# (a poster-sized page at 200 dpi would be a decompression bomb of our own making).
MAX_PAGE_PIXELS = 40_000_000


def render_page(pdf: str | Path | bytes, page: int, dpi: int = EMBED_DPI) -> Image.Image:
    """Page `page` (1-based) as an RGB image at `dpi`, capped at MAX_PAGE_PIXELS."""
    require("PIL.Image", "images")  # pypdfium2's to_pil() needs Pillow
    name = "<bytes>" if isinstance(pdf, bytes) else str(pdf)
    try:
        document = pdfium.PdfDocument(pdf)
    except (pdfium.PdfiumError, OSError) as exc:
        raise IngestError(name, f"cannot open PDF to render page {page}: {exc}") from exc
    try:
        if not 1 <= page <= len(document):
            raise IngestError(name, f"no page {page} (the PDF has {len(document)})")
        handle = document[page - 1]
        try:
            width, height = handle.get_size()  # in points, 1/72 inch
            scale = dpi / 72
            if width * height * scale * scale > MAX_PAGE_PIXELS:
                scale = (MAX_PAGE_PIXELS / (width * height)) ** 0.5
            bitmap = handle.render(scale=scale)
            try:
                return bitmap.to_pil().convert("RGB")
            finally:
                bitmap.close()
        finally:
            handle.close()
    except pdfium.PdfiumError as exc:
        raise IngestError(name, f"cannot render page {page}: {exc}") from exc
    finally:
        document.close()
