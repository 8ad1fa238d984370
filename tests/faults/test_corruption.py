"""Damaged files: derived indexes found and rebuilt on open, a damaged database named as
such (pointing at `mmrag doctor`), and the doctor's checks and repairs."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.errors import StoreError
from mmrag.index.bm25 import BM25Params
from mmrag.index.dense import DenseIndex
from mmrag.index.store import DB_NAME, EmbeddedStore
from mmrag.indexing import doctor
from tests.faults.scifact_store import build, scifact, searches

runner = CliRunner()
N = 300


@pytest.fixture(scope="module")
def records(data_dir: Path) -> list[tuple[str, str]]:
    return scifact(data_dir, N)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, records) -> tuple[Path, tuple]:
    """A checkpointed store and the rankings it gives, copied by each test that damages it."""
    path = tmp_path_factory.mktemp("clean") / "s"
    build(path, records)
    with EmbeddedStore(path, read_only=True) as store:
        expected = searches(store, records)
    return path, expected


@pytest.fixture()
def store_copy(clean, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clean[0], tmp_path / "s", ignore=shutil.ignore_patterns(".lock")))


def _dense_file(path: Path, kind: str) -> Path:
    manifest = json.loads((path / "dense-text" / "manifest.json").read_text())
    return path / "dense-text" / manifest["files"][kind]


def _garble(file: Path, at: float = 0.5, n: int = 64) -> None:
    data = bytearray(file.read_bytes())
    start = int(len(data) * at)
    data[start : start + n] = bytes((b ^ 0x5A) for b in data[start : start + n])
    file.write_bytes(bytes(data))


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


DAMAGE = {
    "sparse garbled": ("sparse", lambda p: _garble(p / "sparse.idx")),
    "sparse truncated": ("sparse", lambda p: _truncate(p / "sparse.idx")),
    "sparse emptied": ("sparse", lambda p: (p / "sparse.idx").write_bytes(b"")),
    "dense vectors garbled": ("dense:text", lambda p: _garble(_dense_file(p, "vectors"))),
    "dense vectors truncated": ("dense:text", lambda p: _truncate(_dense_file(p, "vectors"))),
    "dense rows garbled": ("dense:text", lambda p: _garble(_dense_file(p, "rows"), at=0.9, n=8)),
    "dense manifest garbled": (
        "dense:text",
        lambda p: _garble(p / "dense-text" / "manifest.json", at=0.3, n=4),
    ),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_derived_file_is_rebuilt_on_open(
    damage: str, clean, store_copy: Path, records, caplog: pytest.LogCaptureFixture
) -> None:
    key, spoil = DAMAGE[damage]
    spoil(store_copy)
    with caplog.at_level(logging.WARNING, logger="mmrag.index.store"):
        store = EmbeddedStore(store_copy)
    assert list(store.rebuilt) == [key]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "rebuilding it from the database" in message and "\n" not in message
    assert store.reconciled[key]["mode"] == "full" and store.reconciled[key]["added"] == N
    assert searches(store, records) == clean[1]
    store.close()  # saves a good copy: the next open takes the short way again
    again = EmbeddedStore(store_copy, read_only=True)
    assert not again.rebuilt and again.reconciled[key]["mode"] == "log"
    assert searches(again, records) == clean[1]
    again.close()


def test_a_damaged_file_of_a_read_only_store_is_rebuilt_in_memory(
    clean, store_copy: Path, records
) -> None:
    _garble(store_copy / "sparse.idx")
    with EmbeddedStore(store_copy, read_only=True) as store:
        assert list(store.rebuilt) == ["sparse"]
        assert searches(store, records) == clean[1]


def test_an_hnsw_graph_file_is_checked(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    index = DenseIndex(8, exact_threshold=50)
    index.add(np.arange(200), rng.standard_normal((200, 8)).astype(np.float32))
    assert index.is_hnsw
    index.save(tmp_path / "d", tag=1)
    assert DenseIndex.load(tmp_path / "d").tag == 1
    (graph,) = (tmp_path / "d").glob("hnsw-*.bin")
    _garble(graph)
    with pytest.raises(StoreError, match="does not match its checksum"):
        DenseIndex.load(tmp_path / "d")


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_damaged_database_is_a_clear_error_naming_doctor(
    damage: str, store_copy: Path, records
) -> None:
    db = store_copy / DB_NAME
    if damage == "header":
        _garble(db, at=0.0, n=16)
    else:
        _truncate(db)
    with pytest.raises(StoreError, match=r"mmrag doctor .*--repair"):
        # a truncated file may open (its first pages are whole) and fail on a later read
        with EmbeddedStore(store_copy) as store:
            store.search_sparse([records[0][1][:60]], 10, BM25Params())
            list(store.iter_documents())
    result = runner.invoke(app, ["search", "x", "--store", str(store_copy), "--retriever", "bm25"])
    assert result.exit_code == 2
    assert "mmrag doctor" in result.output and "Traceback" not in result.output


def _chunk_leaf_page(db_file: Path) -> int:
    """A leaf page of the chunks table in the middle of its b-tree."""
    with sqlite3.connect(db_file) as db:
        pages = [
            p
            for (p,) in db.execute(
                "SELECT pageno FROM dbstat WHERE name='chunks' AND pagetype='leaf' ORDER BY path"
            )
        ]
    db.close()
    assert len(pages) > 4
    return pages[len(pages) // 2]


def test_doctor_on_a_healthy_store(store_copy: Path) -> None:
    result = runner.invoke(app, ["doctor", str(store_copy)])
    assert result.exit_code == 0, result.output
    report = doctor.check(store_copy)
    assert report.healthy
    assert [f.part for f in report.findings] == [
        "sqlite",
        "sparse",
        "dense:text",
        "blobs",
        "config",
    ]
    assert {f.status for f in report.findings} == {"ok"}


def test_doctor_finds_a_damaged_index_file_and_orphan_blobs(store_copy: Path, records) -> None:
    _garble(_dense_file(store_copy, "vectors"))
    (store_copy / "media").mkdir()
    (store_copy / "media" / "orphan.jpg").write_bytes(b"\xff\xd8 no chunk points here")
    with EmbeddedStore(store_copy) as store:  # one chunk that does point to a blob
        (store_copy / "media" / "kept.jpg").write_bytes(b"\xff\xd8 kept")
        doc = store.get([records[0][0]])[0]
        store.db.execute("UPDATE chunks SET media='media/kept.jpg' WHERE id=?", (doc.id,))
        store.db.commit()
        store.rebuilt.clear()
        store._dirty = False  # leave the damaged file on disk for the doctor to find
    result = runner.invoke(app, ["doctor", str(store_copy)])
    assert result.exit_code == 1
    assert "fails its checks" in result.output and "1 referred to by no document" in result.output

    result = runner.invoke(app, ["doctor", str(store_copy), "--repair"])
    assert result.exit_code == 0, result.output
    assert not (store_copy / "media" / "orphan.jpg").exists()
    assert (store_copy / "media" / "kept.jpg").exists()
    assert doctor.check(store_copy).healthy


def test_doctor_repairs_a_garbled_page_and_reports_the_loss(
    clean, store_copy: Path, records
) -> None:
    db_file = store_copy / DB_NAME
    with sqlite3.connect(db_file) as db:
        before = {r[0]: r for r in db.execute("SELECT * FROM chunks")}
    db.close()
    page = _chunk_leaf_page(db_file)
    with open(db_file, "r+b") as f:  # the page header: SQLite can tell this page is bad
        f.seek((page - 1) * 4096)
        f.write(b"\x77" * 12)
    with pytest.raises(StoreError, match="mmrag doctor"):
        with EmbeddedStore(store_copy) as store:
            list(store.iter_documents())

    result = runner.invoke(app, ["doctor", str(store_copy)])
    assert result.exit_code == 1 and "problem  sqlite" in result.output
    result = runner.invoke(app, ["doctor", str(store_copy), "--repair", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    lost = report["lost"]

    with sqlite3.connect(db_file) as db:
        after = {r[0]: r for r in db.execute("SELECT * FROM chunks")}
        hashes = dict(db.execute("SELECT source_id, content_hash FROM sources"))
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()[0]
    db.close()
    missing = set(before) - set(after)
    assert 0 < len(missing) < len(before) // 4  # one page's rows, no more
    assert all(after[r] == before[r] for r in after)  # what came back is unchanged
    assert lost["chunks"] == len(after) and lost["chunks_lost"] == len(missing)
    assert lost["chunks_lost_exact"] and lost["sources_lost"] == 0
    # the sources that lost chunks are marked changed, so re-indexing restores them
    hit = {before[r][2] for r in missing}
    assert {s for s, h in hashes.items() if h == ""} == hit
    assert lost["sources_to_reindex"] == len(hit)
    assert seq >= max(before)  # row ids are never given out again
    assert list(store_copy.glob(f"{DB_NAME}.damaged-*"))  # the damaged file is kept

    with EmbeddedStore(store_copy) as store:
        assert len(store) == len(store.sparse) == len(store.dense["text"]) == len(after)
        (hits,) = store.search_sparse([records[0][1][:60]], 10, BM25Params())
        assert hits and all(d.text for d, _ in hits)
    assert doctor.check(store_copy).healthy


def test_doctor_reads_a_database_whose_header_is_garbled(store_copy: Path) -> None:
    db_file = store_copy / DB_NAME
    with sqlite3.connect(db_file) as db:
        n = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    db.close()
    _garble(db_file, at=0.0, n=16)
    report = doctor.repair(store_copy)
    assert report.healthy and report.salvage is not None
    assert report.salvage.header_restored and report.salvage.chunks == n
    assert report.salvage.chunks_lost == 0
