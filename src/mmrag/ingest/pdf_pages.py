"""PDF pages as images: the text layer as chunks, plus one PAGE document per page.

The PAGE documents point at the PDF (`media`) and their page (`span.page`); the image
field embedder and the page retrievers render them on demand with pypdfium2, so no
page bitmaps are stored. Pages without a text layer (scans) are rendered and OCRed,
and their OCR text becomes that page's text section, chunked like any other text.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mmrag.ingest.files import Loaded, Loader, RawFile, Section, SourceFile
from mmrag.ingest.pdf_loader import load_pdf
from mmrag.media.pdf_render import render_page
from mmrag.types import Document, Modality, Span

OCR_DPI = 200  # small print needs more pixels than embedding (pdf_render.EMBED_DPI)


def page_documents(source: SourceFile) -> list[Document]:
    """One PAGE document per page of a loaded PDF (text is left to the text chunks)."""
    pages = int(source.metadata.get("pages", 0))
    return [
        Document(
            id=f"{source.source_id}#page{number}",
            text="",
            modality=Modality.PAGE,
            source_id=source.source_id,
            source=str(source.path),
            media=str(source.path),
            span=Span(page=number),
            metadata={"title": source.title, "page": number},
        )
        for number in range(1, pages + 1)
    ]


def _ocr_sections(raw: RawFile, source: SourceFile) -> tuple[list[Section], list[int]]:
    """Sections with OCR text for the pages that had no text layer."""
    from mmrag.ingest.ocr import default_ocr

    ocr = default_ocr()
    sections, read = [], []
    for section in source.sections:
        if section.metadata.get("needs_ocr") and section.page is not None:
            text = ocr.read(render_page(raw.data, section.page, OCR_DPI)).text
            metadata = {k: v for k, v in section.metadata.items() if k != "needs_ocr"}
            if text.strip():
                metadata["ocr"] = True
                read.append(section.page)
            else:
                metadata["needs_ocr"] = True  # still nothing: a blank or pictorial page
            section = replace(section, text=text, metadata=metadata)
        sections.append(section)
    return sections, read


def make_pdf_pages_loader(ocr: bool = True) -> Loader:
    """A .pdf loader: text chunks (OCR for scanned pages when `ocr`) plus PAGE documents.

    Put it in a loader table, `{**LOADERS, **loader_entries([".pdf"], make_pdf_pages_loader(),
    [ContentKind.PDF])}`, or set `pdf_pages` in an IndexConfig,
    to index PDFs for page retrieval as well as text retrieval.
    """

    def load(raw: RawFile) -> Loaded:
        (source,) = load_pdf(raw).sources
        metadata: dict[str, Any] = dict(source.metadata)
        if ocr and metadata.get("needs_ocr_pages"):
            sections, read = _ocr_sections(raw, source)
            if read:
                metadata["ocr_pages"] = read
            missing = [s.page for s in sections if s.metadata.get("needs_ocr")]
            if missing:
                metadata["needs_ocr_pages"] = missing
            else:
                metadata.pop("needs_ocr_pages", None)
            source = replace(source, sections=sections, metadata=metadata)
        return Loaded([replace(source, media=page_documents(source))])

    return load


def load_pdf_pages(raw: RawFile) -> Loaded:
    """The default page-aware PDF loader (OCR on)."""
    return _default(raw)


_default = make_pdf_pages_loader()
