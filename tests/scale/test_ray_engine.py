"""Ray ingestion: the same store contents as the in-process indexer, resumable, and complete
even when an embedding worker is killed mid-job (local Ray on loopback, 2 CPUs)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmrag.index.store import EmbeddedStore
from mmrag.indexing.config import IndexConfig
from tests.corpus_store import CORPUS, corpus_store

pytest.importorskip("ray", reason="ray is not installed (pip install 'mmrag[scale]')")

from mmrag.indexing.ray_engine import RayOptions, index_paths_with_ray  # noqa: E402

MINILM = IndexConfig(text_encoder="sentence-transformers")  # as tests/corpus_store.py


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    from mmrag.indexing.ray_engine import start_ray

    start_ray(None, 2)
    yield
    ray.shutdown()


def _vectors_by_id(store: EmbeddedStore) -> dict[str, np.ndarray]:
    rows, docs = zip(*store.iter_documents(), strict=True)
    vecs = store.vectors("text", rows)
    return {d.id: v for d, v in zip(docs, vecs, strict=True)}


def test_same_store_as_in_process(local_ray, tmp_path: Path, cache_dir: Path) -> None:
    reference = EmbeddedStore(corpus_store(cache_dir, tmp_path / "reference"))
    with EmbeddedStore(tmp_path / "ray") as store:
        report = index_paths_with_ray(store, [CORPUS], MINILM)
        assert report.added == len(reference.sources()) and not report.errors
        assert store.sources() == reference.sources()
        ours, theirs = _vectors_by_id(store), _vectors_by_id(reference)
        assert ours.keys() == theirs.keys()
        for doc_id, vec in ours.items():
            np.testing.assert_allclose(vec, theirs[doc_id], atol=1e-4)
        assert {d.id: d for _, d in store.iter_documents()} == {
            d.id: d for _, d in reference.iter_documents()
        }
        again = index_paths_with_ray(store, [CORPUS], MINILM)
        assert (again.added, again.updated, again.chunks) == (0, 0, 0)
        assert again.unchanged == report.added
    reference.close()


def _embed_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"_EmbedStage" in cmdline:
                pids.append(int(entry.name))
    return pids


def test_killed_worker_still_completes(local_ray, tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL one embedding actor mid-job: Ray restarts it and the job indexes everything,
    here into Milvus Lite so the Ray path is checked against the server backend too."""
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    from mmrag.index.milvus import MilvusStore
    from tests.scale.servers import LiteServer

    corpus = tmp_path / "docs" / "scifact-part.jsonl"
    corpus.parent.mkdir()
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        corpus.write_text("".join(next(f) for _ in range(120)), encoding="utf-8")
    killed: list[int] = []

    def killer() -> None:
        # Kill the first embedding actor as soon as it exists: later, on a fast machine,
        # the job may already be over. Ray restarts it and re-runs its batches.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid in _embed_workers():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(pid)
                break
            time.sleep(0.1)

    server = LiteServer(tmp_path / "lite").start()
    try:
        store = MilvusStore(server.uri, "ray_ingest", blob_dir=tmp_path / "blobs")
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        report = index_paths_with_ray(
            store, [corpus], MINILM, options=RayOptions(sources_per_task=16)
        )
        thread.join(timeout=1)
        assert killed, "no embedding worker was found to kill"
        assert report.added == 120 and report.chunks == len(store) >= 120
        assert len(store.source_hashes()) == 120
        again = index_paths_with_ray(store, [corpus], MINILM)
        assert (again.added, again.unchanged) == (0, 120)
        store.close()
    finally:
        server.stop()


def test_pdf_pages_through_ray_match_in_process(local_ray, tmp_path: Path) -> None:
    """PDF pages are loaded in the read tasks and rendered and embedded in the actors,
    from the same config the in-process indexer builds from."""
    from mmrag.indexing import build_indexer
    from mmrag.types import Modality

    config = IndexConfig(text_encoder=None, image_encoder="lit", pdf_pages=True, ocr="never")
    pdf = CORPUS / "honeybee-waggle-dance.pdf"
    with EmbeddedStore(tmp_path / "ray") as store, EmbeddedStore(tmp_path / "in") as reference:
        report = index_paths_with_ray(store, [pdf], config, options=RayOptions(workers=1))
        build_indexer(reference, config).index_paths([pdf])
        assert report.added == 1 and not report.errors
        ours = {d.id: (k, d) for k, d in store.iter_documents()}
        theirs = {d.id: (k, d) for k, d in reference.iter_documents()}
        assert {i: d for i, (_, d) in ours.items()} == {i: d for i, (_, d) in theirs.items()}
        pages = [i for i, (_, d) in ours.items() if d.modality is Modality.PAGE]
        assert pages and store.fields() == reference.fields()
        np.testing.assert_allclose(
            store.vectors("image", [ours[i][0] for i in pages]),
            reference.vectors("image", [theirs[i][0] for i in pages]),
            atol=1e-5,
        )


def test_a_page_encoder_is_refused_before_any_work(tmp_path: Path) -> None:
    from mmrag.errors import ConfigError

    config = IndexConfig(page_encoder="colpali", page_model="vidore/colpali-v1.2")
    with EmbeddedStore(tmp_path / "s") as store:
        with pytest.raises(ConfigError, match="--page-encoder needs --engine in-process"):
            index_paths_with_ray(store, [CORPUS], config)
        assert len(store) == 0 and store.fields() == {}
