"""The embedded store: incremental add/update/delete, filters, and crash consistency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError, StoreError
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.store import EmbeddedStore
from mmrag.types import Document

ROOT = Path(__file__).resolve().parents[2]


def _scifact_texts(data_dir: Path, n: int) -> list[tuple[str, str]]:
    import json

    out = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            out.append((rec["_id"], rec["title"] + "\n" + rec["text"]))
            if len(out) == n:
                break
    return out


def _batch(store: EmbeddedStore, records: list[tuple[str, str]], seed: int = 0, **meta) -> Batch:
    rng = np.random.default_rng(seed)
    docs = [
        Document(id=i, text=t, source_id=i, metadata={"n": k, **meta})
        for k, (i, t) in enumerate(records)
    ]
    return Batch(
        sources=[SourceInfo(source_id=d.id, content_hash=str(hash(d.text))) for d in docs],
        docs=docs,
        tokens=[store.analyzer.tokens(d.text) for d in docs],
        vectors={"text": FieldVectors.full(rng.standard_normal((len(docs), 8)).astype(np.float32))},
    )


def _ids(results) -> list[str]:
    (scored,) = results
    return [d.id for d, _ in scored]


@pytest.fixture()
def records(data_dir: Path) -> list[tuple[str, str]]:
    return _scifact_texts(data_dir, 300)


def _open(path: Path) -> EmbeddedStore:
    store = EmbeddedStore(path)
    store.ensure_field("text", 8, {"kind": "random", "model": "test"})
    return store


def test_add_update_delete_and_reopen(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:200]))
    store.write(_batch(store, records[200:], seed=1))
    assert len(store) == 300 and len(store.sparse) == 300 and len(store.dense["text"]) == 300

    query = records[5][1].split("\n")[0]  # a title: its own document must come first
    assert _ids(store.search_sparse([query], 5, BM25Params()))[0] == records[5][0]

    # update: same source id, new text -> old chunk gone, new one found
    new = [(records[5][0], "zyxwv completely replaced text about quokkas")]
    store.write(_batch(store, new, seed=2))
    assert len(store) == 300
    assert _ids(store.search_sparse(["quokkas"], 5, BM25Params())) == [records[5][0]]
    assert records[5][0] not in _ids(store.search_sparse([query], 5, BM25Params()))

    assert store.delete_sources([records[0][0], records[1][0], "no-such-source"]) == 2
    assert len(store) == 298
    store.close()

    again = EmbeddedStore(tmp_path / "s")
    assert len(again) == 298 and len(again.sparse) == 298 and len(again.dense["text"]) == 298
    assert _ids(again.search_sparse(["quokkas"], 5, BM25Params())) == [records[5][0]]
    (row,) = again.filter_rows({"id": records[5][0]})
    assert _ids(again.search_dense("text", again.vectors("text", [row]), 1)) == [records[5][0]]
    again.close()


def test_derived_indexes_catch_up_without_checkpoint(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:100]))
    store.checkpoint()
    store.write(_batch(store, records[100:150], seed=1))
    store.delete_sources([records[0][0]])
    # simulate a crash: drop the handle without saving the derived indexes
    store.db.close()
    store._lock_file.close()
    again = EmbeddedStore(tmp_path / "s")
    assert len(again.sparse) == len(again) == 149
    assert len(again.dense["text"]) == 149
    assert set(again.sparse.rows().tolist()) == set(
        again._live_rows("SELECT row FROM chunks").tolist()
    )
    again.close()


def test_filters(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:50], lang="en"))
    store.write(_batch(store, records[50:60], seed=1, lang="de"))
    de = store.filter_rows({"lang": "de"})
    assert len(de) == 10
    assert len(store.filter_rows({"lang": {"$in": ["de", "en"]}, "n": {"$lt": 5}})) == 10
    assert len(store.filter_rows({"$or": [{"lang": "de"}, {"n": 0}]})) == 11
    (hits,) = store.search_sparse([records[3][1][:80]], 10, BM25Params(), {"lang": "de"})
    assert hits and all(d.metadata["lang"] == "de" for d, _ in hits)
    vec = store.vectors("text", de[:1])
    (hits,) = store.search_dense("text", vec, 50, {"lang": "de"})
    assert len(hits) == 10 and all(d.metadata["lang"] == "de" for d, _ in hits)
    with pytest.raises(ConfigError):
        store.filter_rows({"bad key'; DROP TABLE chunks; --": 1})
    with pytest.raises(ConfigError):
        store.filter_rows({"n": {"$regex": "x"}})
    store.close()


def test_refuses_mixed_encoders_and_second_writer(tmp_path: Path) -> None:
    store = _open(tmp_path / "s")
    with pytest.raises(StoreError, match="refusing to mix"):
        store.ensure_field("text", 8, {"kind": "random", "model": "other"})
    with pytest.raises(StoreError, match="another process"):
        EmbeddedStore(tmp_path / "s")
    reader = EmbeddedStore(tmp_path / "s", read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        reader.delete(["x"])
    reader.close()
    store.close()
    with pytest.raises(StoreError, match="no mmrag store"):
        EmbeddedStore(tmp_path / "missing", read_only=True)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mmrag.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable mmrag store"):
        EmbeddedStore(tmp_path / "s")


@pytest.mark.parametrize("wait_batches", [3, 11, 24])
def test_kill_9_keeps_every_committed_batch(
    tmp_path: Path, data_dir: Path, wait_batches: int
) -> None:
    """A writer killed with SIGKILL mid-indexing leaves a store that opens, holds every
    batch it reported committed, and whose derived indexes agree with the database."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("crash_writer.py")),
            str(tmp_path / "s"),
            str(data_dir / "scifact" / "corpus.jsonl"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed = -1
    deadline = time.monotonic() + 120
    assert child.stdout is not None
    while committed < wait_batches and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        committed = int(line)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert committed >= wait_batches, "writer did not get far enough"

    store = EmbeddedStore(tmp_path / "s")
    ids = {d.id for _, d in store.iter_documents()}
    for b in range(committed + 1):
        assert {f"b{b}-d{i}" for i in range(20)} <= ids
    assert len(ids) % 20 == 0  # batches are all-or-nothing
    live = set(store._live_rows("SELECT row FROM chunks").tolist())
    if committed >= 5:  # a checkpoint had saved the indexes: only its log was compared
        assert store.reconciled["sparse"]["mode"] == "log"
        compared = store.reconciled["sparse"]["compared"]
        assert compared <= 6 * 20 and compared < len(live)
    assert set(store.sparse.rows().tolist()) == live
    assert set(store.dense["text"].rows().tolist()) == live
    assert _ids(store.search_sparse([f"marker{committed}x7"], 3, BM25Params()))[0] == (
        f"b{committed}-d7"
    )
    store.close()


def _searches(store: EmbeddedStore, records, queries: int = 20) -> tuple[list, list]:
    """Sparse and dense rankings (ids and scores) of a fixed set of queries."""
    params = BM25Params()
    texts = [t[:60] for _, t in records[:queries]]
    sparse = [[(d.id, s) for d, s in hits] for hits in store.search_sparse(texts, 10, params)]
    vecs = np.random.default_rng(7).standard_normal((queries, 8)).astype(np.float32)
    dense = [[(d.id, s) for d, s in hits] for hits in store.search_dense("text", vecs, 10)]
    return sparse, dense


def _crash(store: EmbeddedStore) -> None:
    """Drop the handle as a killed process would: nothing saved after the last commit."""
    store.db.close()
    store._lock_file.close()


def test_reopening_after_a_checkpoint_compares_no_rows(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:200]))
    store.close()
    again = EmbeddedStore(tmp_path / "s")
    for report in again.reconciled.values():
        assert report == {"mode": "log", "compared": 0, "deleted": 0, "added": 0}
    assert not again._dirty  # nothing to save: closing writes nothing
    again.close()


def test_crash_between_commit_and_checkpoint_replays_just_the_log(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:200]))
    store.checkpoint()
    store.write(_batch(store, records[200:250], seed=1))  # 50 rows after the checkpoint
    store.delete([records[0][0], records[1][0]])  # 2 rows the saved indexes still hold
    store.delete([records[249][0]])  # written and deleted since: neither side has it
    expected = _searches(store, records)
    _crash(store)

    again = EmbeddedStore(tmp_path / "s")
    assert again.reconciled["sparse"] == {"mode": "log", "compared": 52, "deleted": 2, "added": 49}
    assert again.reconciled["dense:text"] == again.reconciled["sparse"]
    assert len(again) == len(again.sparse) == len(again.dense["text"]) == 247
    assert _searches(again, records) == expected
    reader = EmbeddedStore(tmp_path / "s", read_only=True)  # replays too, writes nothing
    assert reader.reconciled["sparse"]["compared"] == 52
    assert _searches(reader, records) == expected
    reader.close()
    again.close()  # checkpoints: the log is folded into the saved indexes
    last = EmbeddedStore(tmp_path / "s")
    assert last.reconciled["sparse"] == {"mode": "log", "compared": 0, "deleted": 0, "added": 0}
    assert _searches(last, records) == expected
    last.close()


def test_crash_inside_a_checkpoint(tmp_path: Path, records, monkeypatch) -> None:
    """The sparse index saved with the new stamp, the dense one and the log commit not:
    both indexes still replay the log, and agree with SQLite."""
    from mmrag.index.dense import DenseIndex

    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:100]))
    store.checkpoint()
    store.write(_batch(store, records[100:150], seed=1))
    store.delete_sources([records[3][0]])
    expected = _searches(store, records)

    def dies(self, directory, tag=None):
        raise OSError("disk gone")

    monkeypatch.setattr(DenseIndex, "save", dies)
    with pytest.raises(OSError):
        store.checkpoint()
    monkeypatch.undo()
    _crash(store)
    again = EmbeddedStore(tmp_path / "s")
    assert again.sparse.tag == again._meta("checkpoint") + 1
    assert again.reconciled["sparse"] == {"mode": "log", "compared": 51, "deleted": 0, "added": 0}
    assert again.reconciled["dense:text"] == {
        "mode": "log",
        "compared": 51,
        "deleted": 1,
        "added": 50,
    }
    assert _searches(again, records) == expected
    again.close()


def test_copies_without_a_current_stamp_are_compared_row_by_row(tmp_path: Path, records) -> None:
    """A store whose indexes predate the change log (no checkpoint number): every row is
    compared once, and the next checkpoint stamps the copies."""
    store = _open(tmp_path / "s")
    store.write(_batch(store, records[:120]))
    store.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "s" / "mmrag.sqlite") as db:
        db.execute("DELETE FROM meta WHERE key='checkpoint'")
    db.close()
    again = EmbeddedStore(tmp_path / "s")
    assert again.reconciled["sparse"] == {"mode": "full", "compared": 120, "deleted": 0, "added": 0}
    assert again._dirty
    expected = _searches(again, records)
    again.close()
    last = EmbeddedStore(tmp_path / "s")
    assert last.reconciled["sparse"]["mode"] == last.reconciled["dense:text"]["mode"] == "log"
    assert _searches(last, records) == expected
    last.close()


def test_deleting_touches_each_vector_field(tmp_path: Path, records) -> None:
    store = _open(tmp_path / "s")
    store.ensure_field("other", 8, {"kind": "random", "model": "test2"})
    batch = _batch(store, records[:30])
    batch.vectors["other"] = batch.vectors["text"]
    store.write(batch)
    store.delete([records[0][0]])
    fields = dict(store.db.execute("SELECT field, COUNT(*) FROM vectors GROUP BY field"))
    assert fields == {"text": 29, "other": 29}
    store.close()
