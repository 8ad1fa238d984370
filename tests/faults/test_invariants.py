"""The checker tells a lost document from a stale derived index from a ranking effect:
each defect is made on purpose in a real store, and must be named for what it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmrag.index.batch import Batch
from mmrag.index.invariants import LOST, RANKING, STALE, check_store, replay
from mmrag.index.store import EmbeddedStore
from tests.faults.child import DIM, random_batch
from tests.faults.corpus import MARKER

TEXTS = ["Aspirin lowers the risk of a second heart attack.", "Vitamin D and bone density."]


def _entry(batch: Batch) -> dict[str, Any]:
    return {
        "op": "write",
        "sources": [s.source_id for s in batch.sources],
        "docs": [[d.id, d.source_id] for d in batch.docs],
    }


@pytest.fixture
def store(tmp_path: Path) -> tuple[EmbeddedStore, list[dict[str, Any]]]:
    st = EmbeddedStore(tmp_path / "s")
    st.ensure_field("text", DIM, {"kind": "random", "model": "crash-test"})
    log = []
    for b in range(3):
        batch = random_batch(st, b, 8, TEXTS)
        st.write(batch)
        log.append(_entry(batch))
    return st, log


def _causes(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for miss in report.misses:
        out.setdefault(miss.cause, set()).add(miss.doc_id)
    return out


def test_a_sound_store_passes(store) -> None:
    st, log = store
    report = check_store(st, log, marker=MARKER)
    assert report.ok and not report.misses, report.to_dict()
    assert report.last_committed is True
    assert report.checks == {"bm25": 24, "dense:text": 24}


def test_a_row_missing_from_sqlite_is_lost(store) -> None:
    st, log = store
    with st.db:
        (row,) = st.db.execute("SELECT row FROM chunks WHERE id='b1-d3'").fetchone()
        st.db.execute("DELETE FROM chunks WHERE row=?", (row,))
        st.db.execute("DELETE FROM vectors WHERE row=?", (row,))
    report = check_store(st, log, marker=MARKER)
    assert not report.ok
    assert _causes(report) == {LOST: {"b1-d3"}}


def test_rows_missing_from_derived_indexes_are_stale(store) -> None:
    st, log = store
    row = st._live_rows("SELECT row FROM chunks WHERE id='b2-d5'")
    st.dense["text"].delete(row)
    st.sparse.delete(row.tolist())
    report = check_store(st, log, marker=MARKER)
    assert not report.ok
    assert _causes(report) == {STALE: {"b2-d5"}}
    assert {m.check for m in report.misses} == {"bm25", "dense:text"}
    assert any("missing from the index" in p for p in report.problems)


def test_a_derived_vector_unlike_sqlites_is_stale(store) -> None:
    st, log = store
    row = st._live_rows("SELECT row FROM chunks WHERE id='b0-d1'")
    st.dense["text"].add(row, -st.vectors("text", row))  # same row, another vector
    report = check_store(st, log)
    assert _causes(report) == {STALE: {"b0-d1"}}
    assert "another vector" in report.misses[0].detail


def test_identical_vectors_tie_and_a_dominating_one_is_ranking(store) -> None:
    st, log = store
    rows = st._live_rows("SELECT row FROM chunks WHERE id IN ('b0-d0', 'b0-d1') ORDER BY row")
    vectors = st.vectors("text", rows)
    with st.db:  # b0-d1 takes b0-d0's vector: a tie, which b0-d0 (the lower row) wins
        st.db.execute(
            "UPDATE vectors SET vec=? WHERE row=? AND field='text'",
            (vectors[0].tobytes(), int(rows[1])),
        )
    st.dense["text"].add(rows[1:], vectors[:1])
    assert check_store(st, log).misses == []  # tied with an identical vector: found
    # a longer vector in the same direction outscores b0-d0 under inner product
    with st.db:
        st.db.execute(
            "UPDATE vectors SET vec=? WHERE row=? AND field='text'",
            ((3 * vectors[0]).tobytes(), int(rows[1])),
        )
    st.dense["text"].add(rows[1:], 3 * vectors[:1])
    report = check_store(st, log)
    assert report.ok  # a ranking effect is no store defect
    causes = _causes(report)
    assert set(causes) == {RANKING} and "b0-d0" in causes[RANKING]  # and any it outscores
    assert all("score higher" in m.detail for m in report.misses)


def test_half_of_the_last_operation_is_neither_state(store) -> None:
    st, log = store
    with st.db:
        st.db.execute("DELETE FROM chunks WHERE id IN ('b2-d0', 'b2-d1')")
    report = check_store(st, log)
    assert not report.ok and report.last_committed is None
    assert any("neither whole nor absent" in p for p in report.problems)
    # told that the last operation committed, the two are lost
    told = check_store(st, log, last_committed=True)
    assert _causes(told) == {LOST: {"b2-d0", "b2-d1"}}


def test_replay_follows_replacement_and_deletion() -> None:
    log = [
        {"op": "write", "sources": ["a", "b"], "docs": [["a#0", "a"], ["a#1", "a"], ["b#0", "b"]]},
        {"op": "write", "sources": ["a"], "docs": [["a#0", "a"]]},  # a re-indexed: one chunk
        {"op": "delete_sources", "sources": ["b"]},
    ]
    state = replay(log)
    assert state.docs == {"a#0": "a"} and state.sources == {"a"}
    assert np.array_equal(sorted(replay(log[:1]).docs), ["a#0", "a#1", "b#0"])
