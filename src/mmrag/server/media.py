"""Media of stored documents: the file itself (with HTTP range requests, so audio and
video players can seek) and JPEG thumbnails (images, and PDF pages rendered).

Documents are addressed by id, never by path. The file behind an id is found by
`pipeline.media_resolver`, which only returns files inside the store folder, so no
parameter can make the server read anything outside it.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi import Query as Param
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from mmrag.server.auth import require_key_or_cookie
from mmrag.server.state import ServerState
from mmrag.types import Document

router = APIRouter(prefix="/api", tags=["media"], dependencies=[Depends(require_key_or_cookie)])
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def _state(request: Request) -> ServerState:
    return request.app.state.mmrag


def _document(state: ServerState, doc_id: str) -> tuple[Document, Path]:
    docs = state.store.get([doc_id])
    if not docs:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such document")
    path = state.media(docs[0])
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this document has no stored media file")
    return docs[0], path


@router.get("/media/{doc_id:path}", summary="A document's media file (supports Range)")
async def media(request: Request, doc_id: str) -> FileResponse:
    state = _state(request)
    _, path = await run_in_threadpool(_document, state, doc_id)
    mime, _ = mimetypes.guess_type(path.name)
    # Starlette's FileResponse answers Range / If-Range with 206, 416 or multipart ranges.
    return FileResponse(
        path,
        media_type=mime or "application/octet-stream",
        content_disposition_type="inline",
        filename=path.name,
    )


def render_thumbnail(path: Path, page: int | None, size: int) -> bytes:
    """A JPEG no larger than size x size: an image scaled down, or a PDF page rendered."""
    from PIL import Image

    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        try:
            index = min(max((page or 1) - 1, 0), len(pdf) - 1)
            pdf_page = pdf[index]
            width = pdf_page.get_width() or 1
            image = pdf_page.render(scale=max(size / width, 0.05)).to_pil()
        finally:
            pdf.close()
    elif suffix in IMAGE_SUFFIXES:
        image = Image.open(path)
        image.load()
    else:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "no preview for this file type")
    image = image.convert("RGB")
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _thumbnail(state: ServerState, doc_id: str, size: int) -> bytes:
    doc, path = _document(state, doc_id)
    page = doc.span.page if doc.span else None
    stat = path.stat()
    key = hashlib.sha256(f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{page}|{size}".encode())
    cached = state.thumbnails / f"{key.hexdigest()[:32]}.jpg"
    if cached.is_file():
        return cached.read_bytes()
    data = render_thumbnail(path, page, size)
    if not state.settings.read_only:
        state.thumbnails.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(cached)
    return data


@router.get("/thumbnail/{doc_id:path}", summary="A JPEG preview of a document's media")
async def thumbnail(
    request: Request, doc_id: str, size: Annotated[int, Param(ge=32, le=1024)] = 256
) -> Response:
    data = await run_in_threadpool(_thumbnail, _state(request), doc_id, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
