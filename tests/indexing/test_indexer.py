"""The indexing pipeline (prefetch thread, byte-sized batches, encode workers) stores the
same rows, tokens and vectors as the sequential batch loop it replaced, on real SciFact
records with the packaged encoders."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.embedders import TextFieldEmbedder
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.ingest.chunking import chunk_documents
from mmrag.ingest.files import load
from mmrag.models.text import TextEncoder, load_text_encoder
from mmrag.types import Document

RECORDS = 60
CHUNK_TOKENS, OVERLAP = 64, 8  # several chunks per abstract, so order inside a source matters


@pytest.fixture(scope="module")
def corpus(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first SciFact records as a BEIR folder of their own."""
    folder = tmp_path_factory.mktemp("scifact-small")
    with open(data_dir / "scifact" / "corpus.jsonl", "rb") as f:
        (folder / "corpus.jsonl").write_bytes(b"".join(next(f) for _ in range(RECORDS)))
    (folder / "queries.jsonl").write_bytes((data_dir / "scifact" / "queries.jsonl").read_bytes())
    return folder


@pytest.fixture(scope="module")
def queries(data_dir: Path) -> list[str]:
    import json

    with open(data_dir / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(12), f, strict=False)]


@pytest.fixture(scope="module")
def minilm_int8() -> TextEncoder:
    return load_text_encoder("onnx", model="all-MiniLM-L6-v2-int8")


def _old_batch_path(store: EmbeddedStore, encoder: TextEncoder, folder: Path) -> None:
    """The indexer's loop before the pipeline: one thread, a write every 16 chunks, the
    store analysing the text itself, one encode call per batch."""
    embedder = TextFieldEmbedder(encoder)
    store.ensure_field(embedder.field, embedder.dim, embedder.info())
    pending: list[tuple[SourceInfo, list[Document]]] = []

    def flush() -> None:
        docs = [d for _, ds in pending for d in ds]
        positions = np.array([i for i, d in enumerate(docs) if embedder.accepts(d)])
        vectors = embedder.embed([docs[i] for i in positions])
        batch = Batch(sources=[info for info, _ in pending], docs=docs)
        batch.vectors["text"] = FieldVectors(positions, vectors)
        store.write(batch)
        pending.clear()

    for src in load(folder / "corpus.jsonl").sources:
        pending.append((Indexer._source_info(src), chunk_documents(src, CHUNK_TOKENS, OVERLAP)))
        if sum(len(d) for _, d in pending) >= 16:
            flush()
    flush()
    store.checkpoint()


def _rows(store: EmbeddedStore) -> list[tuple]:
    return store.db.execute(
        "SELECT row, id, source_id, modality, text, source, span, metadata, tokens"
        " FROM chunks ORDER BY row"
    ).fetchall()


def _sources(store: EmbeddedStore) -> list[tuple]:
    return store.db.execute(
        "SELECT source_id, path, content_hash, title, metadata FROM sources ORDER BY source_id"
    ).fetchall()


def _compare(old: EmbeddedStore, new: EmbeddedStore, queries: list[str], atol: float) -> None:
    assert _sources(new) == _sources(old)
    old_rows, new_rows = _rows(old), _rows(new)
    assert len(new_rows) > RECORDS  # chunked, and every chunk written
    assert new_rows == old_rows  # same rowids, text, spans, metadata and analysed tokens
    rows = [r[0] for r in old_rows]
    np.testing.assert_allclose(new.vectors("text", rows), old.vectors("text", rows), atol=atol)
    params = BM25Params()
    for a, b in zip(
        old.search_sparse(queries, 10, params), new.search_sparse(queries, 10, params), strict=True
    ):
        assert [d.id for d, _ in a] == [d.id for d, _ in b]
    encoder_vectors = old.vectors("text", rows[:5])
    for a, b in zip(
        old.search_dense("text", encoder_vectors, 10),
        new.search_dense("text", encoder_vectors, 10),
        strict=True,
    ):
        assert [d.id for d, _ in a] == [d.id for d, _ in b]


def test_pipeline_stores_what_the_batch_loop_stored_onnx(
    tmp_path: Path, corpus: Path, queries: list[str], minilm_int8: TextEncoder
) -> None:
    with EmbeddedStore(tmp_path / "old") as old, EmbeddedStore(tmp_path / "new") as new:
        _old_batch_path(old, minilm_int8, corpus)
        indexer = Indexer(
            new,
            minilm_int8,
            chunk_tokens=CHUNK_TOKENS,
            overlap=OVERLAP,
            commit_bytes=20_000,  # several batches of other sizes than the old loop's
            prefetch_bytes=5_000,  # the preparing thread is held back often
            encode_workers=2,
            progress=False,
        )
        report = indexer.index_paths([corpus])
        assert report.added == RECORDS and not report.errors
        assert report.batches > 3
        # one text per ONNX call: a vector does not depend on its batch or its thread
        _compare(old, new, queries, atol=1e-6)


def test_pipeline_stores_what_the_batch_loop_stored_sentence_transformers(
    tmp_path: Path, corpus: Path, queries: list[str]
) -> None:
    encoder = load_text_encoder("sentence-transformers", model="all-MiniLM-L6-v2")
    with EmbeddedStore(tmp_path / "old") as old, EmbeddedStore(tmp_path / "new") as new:
        _old_batch_path(old, encoder, corpus)
        Indexer(
            new,
            encoder,
            chunk_tokens=CHUNK_TOKENS,
            overlap=OVERLAP,
            commit_bytes=40_000,
            encode_workers=2,
            progress=False,
        ).index_paths([corpus])
        # batches padded differently, torch called from two threads: float rounding only
        _compare(old, new, queries, atol=1e-5)


def test_records_pipeline_matches_sequential_and_rerun_is_idempotent(
    tmp_path: Path, corpus: Path, minilm_int8: TextEncoder
) -> None:
    records = [
        (Indexer._source_info(src), chunk_documents(src, CHUNK_TOKENS, OVERLAP))
        for src in load(corpus / "corpus.jsonl").sources
    ]
    with EmbeddedStore(tmp_path / "seq") as seq, EmbeddedStore(tmp_path / "pipe") as pipe:
        Indexer(seq, minilm_int8, prefetch_bytes=0, batch_size=16, progress=False).index_records(
            records
        )
        first = Indexer(
            pipe, minilm_int8, commit_bytes=30_000, encode_workers=2, progress=False
        ).index_records(records, total=len(records))
        assert first.added == RECORDS and first.chunks == len(seq)
        assert _rows(pipe) == _rows(seq)
        again = Indexer(pipe, minilm_int8, progress=False).index_records(records)
        assert (again.added, again.unchanged, again.chunks) == (0, RECORDS, 0)


def test_sparse_only_pipeline_matches_store_analysis(tmp_path: Path, corpus: Path) -> None:
    """Tokens analysed in the preparing thread equal those the store computes itself."""
    with EmbeddedStore(tmp_path / "a") as a, EmbeddedStore(tmp_path / "b") as b:
        Indexer(a, None, chunk_tokens=0, progress=False).index_paths([corpus])
        docs = [d for s in load(corpus / "corpus.jsonl").sources for d in chunk_documents(s, 0)]
        b.write(Batch(sources=[], docs=docs))  # no tokens given: the store analyses
        assert [r[-1] for r in _rows(a)] == [r[-1] for r in _rows(b)]


def test_searches_run_while_a_shared_store_is_indexed(
    tmp_path: Path, corpus: Path, minilm_int8: TextEncoder
) -> None:
    """With `store_lock`, the lock is held per commit, not for the whole run: a searcher
    sharing the store sees it part-filled, between commits, while the rest is embedded."""
    lock = threading.RLock()
    done = threading.Event()
    seen: list[int] = []
    with EmbeddedStore(tmp_path / "s") as store:
        indexer = Indexer(store, minilm_int8, commit_bytes=10_000, store_lock=lock, progress=False)

        def search() -> None:
            while not done.is_set():
                with lock:
                    store.search_sparse(["cell"], 5, BM25Params())
                    seen.append(len(store))
                done.wait(0.005)

        searcher = threading.Thread(target=search)
        searcher.start()
        try:
            report = indexer.index_paths([corpus])
        finally:
            done.set()
            searcher.join()
        assert report.batches > 3
        assert any(0 < n < report.chunks for n in seen)
