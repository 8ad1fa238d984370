"""A failing stage and a request past its time limit, each on a server of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.server import ServerSettings
from tests.corpus_store import CORPUS
from tests.server.conftest import Live, live_server, wait_idle, write_config

BROKEN_GENERATOR = """
[retrieve]
name = "bm25"
k = 2
[generate]
name = "llm"
[generate.params]
base_url = "http://127.0.0.1:9/v1"   # the discard port: nothing answers there
model = "none"
retries = 0
timeout = 2
"""
SLOW_GENERATOR = """
[retrieve]
name = "bm25"
k = 2
[generate]
name = "llm"
[generate.params]
max_tokens = 400
# a long answer, so that it cannot end on its own within the time limit
instruction = "Write a very long essay of at least five hundred words about: {question}"
"""


def _bm25_store(path: Path) -> Path:
    with EmbeddedStore(path) as store:
        Indexer(store, None, progress=False).index_paths([CORPUS])
    return path


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("broken")
    settings = ServerSettings(
        store=_bm25_store(root / "store"), config=write_config(root, BROKEN_GENERATOR)
    )
    with live_server(settings) as live:
        yield live


def test_a_failing_generator_returns_the_error_and_the_passages(broken: Live) -> None:
    r = broken.client.post(
        "/api/ask", json={"question": "How do vaccines train the immune system?"}
    )
    assert r.status_code == 500
    body = r.json()
    assert body["stage"] == "generate" and "generate stage 'llm' failed" in body["detail"]
    assert len(body["passages"]) == 2
    assert Path(body["passages"][0]["source"]).name == "how-vaccines-work.txt"


def test_a_failing_generator_in_a_stream_sends_an_error_event(broken: Live) -> None:
    with broken.client.stream(
        "POST",
        "/api/ask",
        json={"question": "How do vaccines train the immune system?", "stream": True},
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    events = [line[7:] for line in lines if line.startswith("event: ")]
    assert events == ["passages", "error"]
    error = json.loads(lines[-1][6:])
    assert error["stage"] == "generate" and len(error["passages"]) == 2


def test_a_failing_generator_behind_the_openai_face(broken: Live) -> None:
    r = broken.client.post(
        "/v1/chat/completions",
        json={
            "model": "mmrag",
            "messages": [{"role": "user", "content": "How do vaccines train the immune system?"}],
        },
    )
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "generate" and error["passages"]
    assert broken.client.post("/api/search", json={"query": "vaccines"}).status_code == 200


def test_requests_past_the_time_limit_stop_their_generation(tmp_path: Path) -> None:
    settings = ServerSettings(
        store=_bm25_store(tmp_path / "store"),
        config=write_config(tmp_path, SLOW_GENERATOR),
        timeout=2,
    )
    with live_server(settings) as live:
        live.state.pipeline()  # load the model first: the limit is for answering
        r = live.client.post("/api/ask", json={"question": "Explain the water cycle."})
        assert r.status_code == 504 and "generation was stopped" in r.json()["detail"]
        wait_idle(live, seconds=90)
        usage = live.state.pipeline().generator.lm.usage  # type: ignore[union-attr]
        assert usage.completion_tokens < 200  # 400 were allowed; the worker was stopped

        with live.client.stream(
            "POST", "/api/ask", json={"question": "Explain the water cycle.", "stream": True}
        ) as s:
            lines = [line for line in s.iter_lines() if line]
        assert lines[-2] == "event: error"
        error = json.loads(lines[-1][6:])
        assert "no answer within 2 s" in error["detail"] and error["passages"]
        wait_idle(live, seconds=90)
