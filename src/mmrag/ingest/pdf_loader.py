"""PDF text layer through pypdfium2: one section per page, with its 1-based page number.

A page without a text layer (a scan) becomes an empty section marked `needs_ocr`;
the file's metadata lists those pages so an OCR stage can fill them in later.
"""

from __future__ import annotations

from typing import Any

import pypdfium2 as pdfium

from mmrag.errors import IngestError
from mmrag.ingest.files import Loaded, RawFile, Section
from mmrag.ingest.pdf_streams import check_pdf_streams

# pdfium's document-loading error codes (fpdfview.h, FPDF_ERR_*).
_LOAD_ERRORS = {
    1: "unknown error",
    2: "file not found or could not be opened",
    3: "damaged or truncated PDF (not in PDF format)",
    4: "encrypted PDF: a password is required",
    5: "unsupported security scheme",
    6: "page not found or content error",
}


def _page_text(page: Any) -> str:
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
    finally:
        textpage.close()
    # pdfium ends lines with CRLF; a soft hyphen it could not resolve comes out as
    # U+FFFE, a noncharacter that must not reach an index.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "")


def _metadata_title(pdf: Any) -> str:
    try:
        title = pdf.get_metadata_dict(skip_empty=True).get("Title", "")
    except Exception:  # noqa: BLE001 - a broken info dictionary only costs the title
        return ""
    return " ".join(str(title).split())


def load_pdf(raw: RawFile) -> Loaded:
    """The text layer of each page; an encrypted, damaged or bomb file raises IngestError."""
    check_pdf_streams(str(raw.path), raw.data)
    try:
        pdf = pdfium.PdfDocument(raw.data)
    except pdfium.PdfiumError as exc:
        reason = _LOAD_ERRORS.get(getattr(exc, "err_code", None) or 0, str(exc))
        raise IngestError(str(raw.path), f"cannot open PDF: {reason}") from exc
    try:
        sections = []
        needs_ocr = []
        n_pages = len(pdf)
        if n_pages == 0:
            raise IngestError(str(raw.path), "PDF has no pages (damaged or truncated?)")
        for index in range(n_pages):
            number = index + 1
            try:
                page = pdf[index]
            except pdfium.PdfiumError as exc:
                raise IngestError(
                    str(raw.path), f"cannot read page {number} of {n_pages}: {exc}"
                ) from exc
            try:
                text = _page_text(page)
            finally:
                page.close()
            metadata: dict[str, Any] = {}
            if not text.strip():
                metadata["needs_ocr"] = True
                needs_ocr.append(number)
            sections.append(Section(text, number, metadata))
        title = _metadata_title(pdf)
    finally:
        pdf.close()
    if not title:
        title = next((s.text.strip().split("\n", 1)[0] for s in sections if s.text.strip()), "")
        title = title if len(title) <= 100 else ""
    file_metadata: dict[str, Any] = {"pages": n_pages}
    if needs_ocr:
        file_metadata["needs_ocr_pages"] = needs_ocr
    return Loaded([raw.source(title, sections, file_metadata)])
