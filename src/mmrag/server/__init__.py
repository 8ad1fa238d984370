"""The HTTP service behind `mmrag serve`: JSON API, OpenAI-compatible API, web page.

Importing this package is cheap and needs no web framework: the app is built, and
fastapi imported, only when asked for (the `server` extra installs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrag.registry import require
from mmrag.server.run import serve
from mmrag.server.settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(settings: ServerSettings) -> FastAPI:
    """Open the store and build the app (models load on first use)."""
    require("fastapi", "server")
    from mmrag.server.app import create_app as build

    return build(settings)


__all__ = ["ServerSettings", "create_app", "serve"]
