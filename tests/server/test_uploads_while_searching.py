"""The server indexing uploads while it answers searches: every search answers, with the
best passage it gave alone, and every upload is searchable as soon as its request returns.

Only the first hit is compared: each upload adds a document, which moves every term's
idf a little, and that may swap near-tied hits further down (seen at rank 3)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.server import ServerSettings
from tests.corpus_store import corpus_store
from tests.server.conftest import KEY, Live, live_server

QUERIES = ["how do vaccines train the immune system", "why are there two tides a day",
           "what does a bicycle derailleur do"]  # fmt: skip
UPLOADS = 8


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("uploads-while-searching")
    settings = ServerSettings(store=corpus_store(cache_dir, root / "store"), api_key=KEY)
    with live_server(settings) as live:
        yield live


def _top(live: Live, query: str, retriever: str) -> list[str]:
    r = live.client.post("/api/search", json={"query": query, "k": 3, "retriever": retriever})
    r.raise_for_status()
    return [h["id"] for h in r.json()["hits"]]


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_searches_keep_answering_the_same_while_uploads_are_indexed(server, retriever):
    alone = {q: _top(server, q, retriever) for q in QUERIES}
    errors: list[str] = []
    answered = [0]
    stop = threading.Event()

    def search_loop(offset: int) -> None:
        n = offset
        while not stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            try:
                got = _top(server, query, retriever)
            except Exception as exc:  # noqa: BLE001 - every failure is counted, not raised here
                errors.append(f"{query}: {exc}")
                continue
            answered[0] += 1
            if got[0] != alone[query][0] or any("quokkaglyph" in h for h in got):
                errors.append(f"{query}: {got} != {alone[query]}")

    searchers = [threading.Thread(target=search_loop, args=(i,)) for i in range(3)]
    for t in searchers:
        t.start()
    try:
        for i in range(UPLOADS):
            # unique words on an unrelated subject: the corpus queries' results stay put
            token = f"quokkaglyph{retriever}{i}"
            text = f"Notes {token}: the {token} archive lists ferry timetables for island {i}."
            r = server.client.post(
                "/api/documents", files={"files": (f"{token}.txt", text.encode(), "text/plain")}
            )
            assert r.status_code == 201, r.text
            found = server.client.post("/api/search", json={"query": token, "k": 1}).json()
            assert found["hits"] and token in found["hits"][0]["text"], found
    finally:
        stop.set()
        for t in searchers:
            t.join(60)
    assert not errors, errors[:5]
    assert answered[0] >= UPLOADS, answered  # the searches ran during the uploads
