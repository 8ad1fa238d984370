"""The `mmrag serve` application: API routes, the OpenAI-compatible face, the web page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import mmrag
from mmrag.errors import IngestError, MMRagError, StoreError
from mmrag.ingest.files import supported_suffixes
from mmrag.server import ask, documents, media, openai_api
from mmrag.server.auth import require_key
from mmrag.server.limits import BodyLimit
from mmrag.server.settings import ServerSettings
from mmrag.server.state import ServerState

STATIC = Path(str(resources.files("mmrag.server").joinpath("static")))


def _status_for(exc: MMRagError) -> int:
    if isinstance(exc, IngestError):
        return 422
    if isinstance(exc, StoreError):
        return 409
    return 400  # ConfigError and the rest: the request asked for something invalid


def create_app(settings: ServerSettings) -> FastAPI:
    """Open the store and build the app (models load on first use)."""
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="mmrag",
        version=mmrag.__version__,
        summary="Multimodal retrieval-augmented generation over one embedded store.",
        lifespan=lifespan,
    )
    app.state.mmrag = state
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        routes={documents.UPLOAD_PATH: settings.max_upload_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges"],
        )

    @app.exception_handler(MMRagError)
    async def user_error(_: Request, exc: MMRagError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status_for(exc))

    for module in (documents, ask, media, openai_api):
        app.include_router(module.router)

    @app.get("/health", tags=["meta"], summary="Liveness (no key needed)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info", tags=["meta"], dependencies=[Depends(require_key)])
    async def info(request: Request) -> dict[str, Any]:
        st: ServerState = request.app.state.mmrag
        store_info = await run_in_threadpool(st.store.info)
        return {
            "store": store_info,
            "active_generations": st.active_generations,
            "default_retriever": st.default_retriever(),
            "supported": supported_suffixes(),
            "max_upload_bytes": settings.max_upload_bytes,
            "read_only": settings.read_only,
            "auth": bool(settings.api_key),
            "model": settings.model_id,
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
