"""Live servers on 127.0.0.1 (uvicorn in a thread), over real stores and real models."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from mmrag.server import ServerSettings, create_app
from mmrag.server.state import ServerState
from tests.corpus_store import corpus_store

KEY = "test-key"
ALLOWED_ORIGIN = "http://allowed.test"
ANSWER_CONFIG = """
[retrieve]
name = "hybrid"
k = 3

[generate]
name = "llm"
[generate.params]
model = "qwen2.5-coder-0.5b-instruct"  # the fast one: these tests check mechanics, not quality
max_tokens = 16
max_passage_chars = 500
# one sentence: with the short style the 0.5B model picks the wrong name from the
# passage ("Johann Fust") for "Who invented the printing press?" (bench/results/qa-sweep.json)
style = "sentence"
"""


@dataclass
class Live:
    url: str
    state: ServerState
    client: httpx.Client  # sends the API key
    app: Any = None  # the ASGI app itself (its route table; in-process calls)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@contextmanager
def live_server(settings: ServerSettings) -> Iterator[Live]:
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    client = httpx.Client(base_url=url, headers=headers, timeout=120)
    try:
        yield Live(url, app.state.mmrag, client, app)
    finally:
        client.close()
        server.should_exit = True
        thread.join(15)


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def served(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The examples/corpus store behind a key, CORS for one origin, a 1 MiB upload limit."""
    root = tmp_path_factory.mktemp("served")
    settings = ServerSettings(
        store=corpus_store(cache_dir, root / "store"),
        config=write_config(root, ANSWER_CONFIG),
        api_key=KEY,
        cors_origins=(ALLOWED_ORIGIN,),
        max_upload_bytes=1024 * 1024,
        timeout=90,
    )
    with live_server(settings) as live:
        yield live


def wait_idle(live: Live, seconds: float = 90) -> float:
    """Seconds until no generation runs on the server (fails after `seconds`).

    Generous: a long prompt is read in one step that cannot be interrupted, and this
    machine may be busy; the tests check the tokens made, not the time taken.
    """
    start = time.monotonic()
    while live.state.active_generations:
        if time.monotonic() - start > seconds:
            raise AssertionError(f"a generation still runs after {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def multimodal_served(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A store of its own, to which tests add images: its default search becomes multimodal."""
    root = tmp_path_factory.mktemp("multimodal")
    settings = ServerSettings(
        store=corpus_store(cache_dir, root / "store"),
        # no retriever named: multimodal once images arrive; photos without text are left
        # out of the answer's context, so retrieve enough to keep three text passages
        config=write_config(root, ANSWER_CONFIG.replace('name = "hybrid"\nk = 3', "k = 6")),
        api_key=KEY,
        timeout=90,
    )
    with live_server(settings) as live:
        yield live


def flickr_images(data_dir: Path, n: int, skip: int = 0) -> list[tuple[Path, str]]:
    """The first `n` Flickr8k photos after `skip`, each with its first English caption."""
    import csv

    folder = data_dir / "flickr8k"
    captions: dict[str, str] = {}
    with (folder / "captions_en.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], row["caption"])
    names = sorted(captions)[skip : skip + n]
    return [(folder / "images" / name, captions[name]) for name in names]
