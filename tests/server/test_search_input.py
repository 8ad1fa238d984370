"""/api/search with bad or extreme input, and while an upload is being indexed, on a
server of its own (uploads here must not change the shared store of test_api.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmrag.retrieve import RETRIEVERS
from mmrag.server import ServerSettings
from tests.corpus_store import CORPUS, corpus_store
from tests.server.conftest import Live, live_server

RETRIEVER_NAMES = ("bm25", "dense", "hybrid")


@pytest.fixture(scope="module")
def live(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("search-input")
    with live_server(ServerSettings(store=corpus_store(cache_dir, root / "store"))) as live:
        yield live


def search(live: Live, **body: object) -> httpx.Response:
    return live.client.post("/api/search", json=body)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def ten_thousand_words() -> str:
    words = " ".join(p.read_text() for p in sorted(CORPUS.glob("*.md"))).split()
    return " ".join((words * (10_000 // len(words) + 1))[:10_000])


@pytest.mark.parametrize("retriever", RETRIEVER_NAMES)
def test_a_10000_word_query_is_cut_and_answered(live: Live, retriever: str) -> None:
    query = ten_thousand_words()
    r = search(live, query=query, retriever=retriever)
    body = r.json()
    assert r.status_code == 200 and body["truncated"] is True and body["hits"]
    limit = live.state.settings.max_query_chars
    cut = body["query"]
    assert len(cut) <= limit and query.startswith(cut) and query[len(cut)] == " "
    # The answer is that of the cut query, asked as such.
    again = search(live, query=cut, retriever=retriever)
    assert again.json()["truncated"] is False and ids(again) == ids(r)


def test_a_body_over_the_request_limit_is_413_in_one_line(live: Live) -> None:
    big = "word " * (live.state.settings.max_request_bytes // 5 + 1)
    r = search(live, query=big)
    detail = r.json()["detail"]
    assert r.status_code == 413 and "over the limit" in detail and "\n" not in detail


def test_k_zero_and_k_over_the_limit_are_422(live: Live) -> None:
    zero = search(live, query="tides", k=0)
    assert zero.status_code == 422
    assert any("k" in err["loc"] for err in zero.json()["detail"])
    over = search(live, query="tides", k=live.state.settings.search_k_max + 1)
    detail = over.json()["detail"]
    assert over.status_code == 422 and "k=101" in detail and "limit of 100" in detail


def test_k_larger_than_the_store_returns_what_there_is(live: Live) -> None:
    store = live.state.store
    every = {d.id for _, d in store.iter_documents()}
    k = live.state.settings.search_k_max
    assert len(every) < k
    for name in ("dense", "hybrid"):  # both rank every document
        found = ids(search(live, query="ocean tides and the moon", k=k, retriever=name))
        assert len(found) == len(set(found)) and set(found) == every
    # BM25 returns the documents that share a term with the query, as the library does.
    bm25 = ids(search(live, query="ocean tides and the moon", k=k, retriever="bm25"))
    expected = RETRIEVERS.create("bm25", store=store).retrieve("ocean tides and the moon", k)
    assert bm25 == expected.ids() and 0 < len(bm25) < len(every)


@pytest.mark.parametrize("retriever", RETRIEVER_NAMES)
def test_a_filter_that_matches_nothing_gives_no_hits(live: Live, retriever: str) -> None:
    r = search(live, query="ocean tides", retriever=retriever, filters={"source_id": "none"})
    assert ids(r) == []


def test_a_malformed_filter_is_a_one_line_error(live: Live) -> None:
    r = search(live, query="ocean tides", filters={"$nope": 1})
    detail = r.json()["detail"]
    assert r.status_code == 400 and "$nope" in detail and "\n" not in detail


def scifact_part(data_dir: Path, folder: Path, n: int) -> Path:
    lines = (data_dir / "scifact" / "corpus.jsonl").read_text().splitlines()[:n]
    path = folder / "scifact-part.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_search_during_an_upload_finishes_before_it(
    live: Live, data_dir: Path, tmp_path: Path
) -> None:
    """The upload holds the store only to commit, so a search issued while it embeds
    answers before the upload does (before, one lock was held for the whole job)."""
    part = scifact_part(data_dir, tmp_path, 200)
    query = {"query": "How does the moon raise ocean tides?", "k": 3}
    before = ids(search(live, **query))  # models loaded, retriever built
    finished: dict[str, float] = {}
    upload: dict[str, httpx.Response] = {}

    def send_upload() -> None:
        with httpx.Client(base_url=live.url, timeout=600) as client:
            files = [("files", (part.name, part.read_bytes(), "application/jsonl"))]
            upload["response"] = client.post("/api/documents", files=files)
        finished["upload"] = time.monotonic()

    sender = threading.Thread(target=send_upload)
    sender.start()
    try:
        # The file is staged in the store folder just before indexing starts.
        while not any(live.state.uploads.rglob(part.name)) and sender.is_alive():
            time.sleep(0.01)
        during = ids(search(live, **query))
        finished["search"] = time.monotonic()
    finally:
        sender.join()
    assert upload["response"].status_code == 201, upload["response"].text
    assert finished["search"] < finished["upload"]
    assert during == before  # SciFact's abstracts do not outrank the tides page
    first = json.loads(part.read_text().splitlines()[0])
    found = search(live, query=first["title"], k=1, retriever="bm25").json()["hits"]
    assert found[0]["source_id"] == first["_id"]  # the upload is searchable now
