"""The HTTP service behind `mmrag serve`: JSON API, OpenAI-compatible API, web page."""

from mmrag.server.app import create_app
from mmrag.server.run import serve
from mmrag.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "serve"]
