"""`mmrag serve`: a face over server/run.py's serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.console import console
from mmrag.cli.store_location import StoreOpt, store_location
from mmrag.server.run import API_KEY_ENV


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    store: StoreOpt = None,
    config: Annotated[
        Path | None, typer.Option(help="Pipeline TOML (see examples/pipeline.toml).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar=API_KEY_ENV, help="Require 'Authorization: Bearer KEY' on the API."),
    ] = None,
    cors: Annotated[
        list[str] | None, typer.Option(help="Allowed CORS origin (repeatable).")
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest upload request, in MiB.")
    ] = 50,
    timeout: Annotated[float, typer.Option(min=1, help="Per-request time limit in seconds.")] = 120,
    read_only: Annotated[bool, typer.Option(help="Refuse uploads and deletions.")] = False,
) -> None:
    """Serve the store over HTTP: JSON API, OpenAI-compatible /v1, and a web page at /."""
    from mmrag.server.run import serve

    where = store_location(store)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    console.print(f"serving {where} at [bold]http://{shown}:{port}/[/bold] (Ctrl-C to stop)")
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[yellow]warning:[/yellow] no API key on a non-loopback address")
    serve(
        host,
        port,
        where,
        api_key,
        config,
        cors_origins=cors or (),
        max_upload_mb=max_upload_mb,
        timeout=timeout,
        read_only=read_only,
    )
