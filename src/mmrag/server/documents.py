"""Upload, list and delete documents.

An upload is checked whole before anything is written: every file's type must have a
loader and its bytes must look like that type (else 415). Files are staged inside the
store, moved to `uploads/<content hash>/<name>` and indexed; if indexing fails, the
files are removed again, so a refused upload leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile, status
from starlette.concurrency import run_in_threadpool

from mmrag.index import faults
from mmrag.indexing.build import is_visual
from mmrag.ingest.files import LOADERS, ContentKind, sniff, supported_suffixes
from mmrag.server.auth import require_key
from mmrag.server.state import ServerState

router = APIRouter(prefix="/api", tags=["documents"], dependencies=[Depends(require_key)])
UPLOAD_PATH = "/api/documents"  # the one route whose body may be as large as an upload
_UNSAFE = re.compile(r"[^\w.\- ()]+")
_SNIFF_BYTES = 8192


@dataclass(slots=True)
class _Checked:
    name: str
    upload: UploadFile


def safe_name(filename: str | None) -> str:
    """The last path component with unusual characters replaced; never '', '.' or '..'."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:120] or "upload"


def _state(request: Request) -> ServerState:
    return request.app.state.mmrag


def _writable(state: ServerState) -> None:
    if state.settings.read_only:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this server's store is read-only")


async def _check(upload: UploadFile) -> _Checked:
    name = safe_name(upload.filename)
    suffix = Path(name).suffix.lower()
    entry = LOADERS.get(suffix)
    if entry is None:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"{name}: unsupported file type {suffix or '(no suffix)'}; "
            f"supported: {', '.join(supported_suffixes())}",
        )
    head = await upload.read(_SNIFF_BYTES)
    await upload.seek(0)
    kind = sniff(head)
    if kind is not ContentKind.EMPTY and kind not in entry.kinds:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"{name}: content looks like {kind.value}, which a {suffix} file cannot be",
        )
    return _Checked(name, upload)


def _stage(state: ServerState, checked: list[_Checked]) -> tuple[list[Path], list[Path]]:
    """Write each file to uploads/<hash>/<name>; returns (paths, folders created now)."""
    state.uploads.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    created: list[Path] = []
    for item in checked:
        staging = state.uploads / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        target = staging / item.name
        digest = hashlib.sha256()
        item.upload.file.seek(0)
        with target.open("wb") as out:
            for block in iter(lambda f=item.upload.file: f.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        faults.point("upload.staged")
        folder = state.uploads / digest.hexdigest()[:16]
        if (folder / item.name).is_file():
            shutil.rmtree(staging)  # the same bytes under the same name: already stored
        elif folder.exists():
            target.replace(folder / item.name)
            shutil.rmtree(staging)
            created.append(folder / item.name)
        else:
            staging.replace(folder)
            created.append(folder)
        paths.append(folder / item.name)
        faults.point("upload.moved")
    return paths, created


def _remove(state: ServerState, created: list[Path]) -> None:
    for path in created:
        if path.is_relative_to(state.uploads):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _index(state: ServerState, checked: list[_Checked]) -> list[dict[str, Any]]:
    indexer = state.indexer(visual=any(is_visual(c.name) for c in checked))
    # Other writers wait; searches go on, the store taking its lock per commit only.
    with state.write_lock:
        paths, created = _stage(state, checked)
        try:
            report = indexer.index_paths(paths)
        except BaseException:
            _remove(state, created)
            raise
        if report.errors:
            _remove(state, created)
            reasons = "; ".join(f"{Path(e.path).name}: {e.reason}" for e in report.errors)
            raise HTTPException(422, f"not indexed: {reasons}")
        chunks = {s["source_id"]: s["chunks"] for s in state.store.sources()}
    state.store_changed()
    return [
        {
            "source_id": str(path),
            "name": item.name,
            "chunks": chunks.get(str(path), 0),
            "bytes": path.stat().st_size,
        }
        for path, item in zip(paths, checked, strict=True)
    ]


@router.post("/documents", status_code=status.HTTP_201_CREATED, summary="Upload and index files")
async def upload(
    request: Request, files: Annotated[list[UploadFile], File(description="Files to index.")]
) -> dict[str, Any]:
    state = _state(request)
    _writable(state)
    checked = [await _check(f) for f in files]  # all or nothing: check every file first
    indexed = await run_in_threadpool(_index, state, checked)
    return {"documents": indexed}


@router.get("/documents", summary="List stored sources")
async def list_documents(request: Request) -> dict[str, Any]:
    state = _state(request)

    sources = await run_in_threadpool(state.store.sources)
    for s in sources:
        s["name"] = Path(s["path"]).name if s.get("path") else s["source_id"]
        s["uploaded"] = bool(s.get("path")) and Path(s["path"]).resolve().is_relative_to(
            state.uploads
        )
    return {"documents": sources, "supported": supported_suffixes()}


@router.delete("/documents", summary="Delete a source and its chunks")
async def delete_document(
    request: Request,
    source_id: Annotated[str, Query(min_length=1, description="A source id, as listed.")],
) -> dict[str, Any]:
    state = _state(request)
    _writable(state)

    def remove() -> tuple[int, str | None]:
        with state.write_lock:
            known = {s["source_id"]: s.get("path") for s in state.store.sources()}
            if source_id not in known:
                return -1, None
            removed = state.store.delete_sources([source_id])
            state.store.checkpoint()
            return removed, known[source_id]

    removed, path = await run_in_threadpool(remove)
    if removed < 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {source_id!r} in the store")
    faults.point("upload.removed_rows")
    if path:
        file = Path(path).resolve()
        # Only files the server itself stored are deleted from disk, never the user's own.
        if file.is_relative_to(state.uploads) and file.is_file():
            folder = file.parent
            file.unlink()
            if folder != state.uploads and not any(folder.iterdir()):
                folder.rmdir()
    return {"source_id": source_id, "chunks_removed": removed}
