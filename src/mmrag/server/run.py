"""Start the server with uvicorn."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mmrag.registry import require
from mmrag.server.settings import ServerSettings

API_KEY_ENV = "MMRAG_API_KEY"


def serve(
    host: str,
    port: int,
    store: str | Path,
    api_key: str | None = None,
    config: str | Path | None = None,
    *,
    cors_origins: Sequence[str] = (),
    max_upload_mb: float = 50,
    timeout: float = 120.0,
    read_only: bool = False,
    log_level: str = "info",
) -> None:
    """Serve `store` at http://host:port until interrupted.

    `api_key` falls back to $MMRAG_API_KEY; with neither, the API is open, which is
    only sensible on a loopback address.
    """
    uvicorn = require("uvicorn", "server")
    from mmrag.server import create_app

    settings = ServerSettings(
        store=store,
        config=Path(config) if config else None,
        api_key=api_key or os.environ.get(API_KEY_ENV) or None,
        cors_origins=tuple(cors_origins),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        timeout=timeout,
        read_only=read_only,
    )
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
