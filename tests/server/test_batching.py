"""SearchBatcher on a real BM25 store: batched answers equal one-by-one answers, and one
bad query in a batch fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mmrag.errors import ConfigError
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.retrieve.sparse import BM25Retriever
from mmrag.server.batching import SearchBatcher
from mmrag.types import Query, Ranked
from tests.corpus_store import CORPUS

QUERIES = [
    "comet landing",
    "ocean tides and the moon",
    "sourdough starter",
    "honeybee dance",
    "heat pump efficiency",
    "printing press history",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path_factory.mktemp("batching") / "store") as store:
        Indexer(store, None, progress=False).index_paths([CORPUS])
        yield store


def run_all(batcher: SearchBatcher, retriever: BM25Retriever, queries: list[Query]) -> list:
    async def main() -> list:
        try:
            return await asyncio.gather(
                *(batcher.search(retriever, q, 3) for q in queries), return_exceptions=True
            )
        finally:
            batcher.close()

    return asyncio.run(main())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batched_answers_equal_single_ones(store: EmbeddedStore, workers: int) -> None:
    retriever = BM25Retriever(store)
    queries = [Query(text=t) for t in QUERIES * 4]
    got = run_all(SearchBatcher(workers), retriever, queries)
    assert [r.ids() for r in got] == [retriever.retrieve(q, 3).ids() for q in queries]
    assert all(r.hits for r in got)


def test_a_bad_filter_fails_its_own_query_only(store: EmbeddedStore) -> None:
    retriever = BM25Retriever(store)
    queries = [Query(text=t) for t in QUERIES]
    queries.insert(2, Query(text="comet", filters={"$nope": 1}))
    # One worker: every query is queued before it runs, so all share one batch.
    got = run_all(SearchBatcher(1), retriever, queries)
    assert isinstance(got[2], ConfigError) and "$nope" in str(got[2])
    rest = [r for i, r in enumerate(got) if i != 2]
    assert all(isinstance(r, Ranked) and r.hits for r in rest)


def test_the_server_runs_blas_on_one_thread_per_search_worker(tmp_path) -> None:
    """Set once for the process: raising it again after each search woke an OpenBLAS
    thread that spun through the next query (mmrag.threads). A child process, because
    the count is process-wide."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from threadpoolctl import threadpool_info\n"
        "from mmrag.server.settings import ServerSettings\n"
        "from mmrag.server.state import ServerState\n"
        "ServerState(ServerSettings(store=Path(sys.argv[1])))\n"
        "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.strip() == "[1]", out.stdout + out.stderr
