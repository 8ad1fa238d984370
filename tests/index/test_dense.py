"""DenseIndex: exact search equals brute force, HNSW recall, deletes, filters, persistence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError, StoreError
from mmrag.index.dense import DenseIndex


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around 1,000 overlapping centres; queries from the same distribution."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim))
    x = centres[rng.integers(0, 1000, n + n_queries)] + rng.standard_normal((n + n_queries, dim))
    x = _unit(x)
    return x[:n], x[n:]


def _brute_force(
    x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "ip":
        s = q.astype(np.float64) @ x.T.astype(np.float64)
    else:
        s = -((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(s, order, axis=1)


def _recall(truth: np.ndarray, found: np.ndarray) -> float:
    return float(
        np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found, strict=True)])
    )


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_equals_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    ids = rng.choice(10**9, size=3000, replace=False).astype(np.int64)  # arbitrary row ids
    q = rng.standard_normal((40, 32)).astype(np.float32)
    index = DenseIndex(32, metric=metric)
    index.add(ids[:1000], x[:1000])
    index.add(ids[1000:], x[1000:])
    rows, scores = index.search(q, 10)
    want_rows, want_scores = _brute_force(x, ids, q, 10, metric)
    assert not index.is_hnsw and len(index) == 3000
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-3)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(index.rows(), np.sort(ids))


def test_padding_when_fewer_than_k() -> None:
    x = _unit(np.random.default_rng(2).standard_normal((3, 8)))
    index = DenseIndex(8)
    index.add(np.array([5, 9, 11]), x)
    rows, scores = index.search(x[:1], 5)
    assert rows[0, 0] == 5 and abs(scores[0, 0] - 1.0) < 1e-6
    assert sorted(rows[0, :3].tolist()) == [5, 9, 11]
    assert rows[0, 3:].tolist() == [-1, -1] and np.isneginf(scores[0, 3:]).all()
    empty_rows, _ = DenseIndex(8).search(x, 4)
    assert (empty_rows == -1).all()


def test_hnsw_recall_against_exact() -> None:
    x, q = _clustered(30_000, 300, 64)
    ids = np.arange(30_000, dtype=np.int64) * 7 + 3
    exact = DenseIndex(64, exact_threshold=10**9)
    exact.add(ids, x)
    index = DenseIndex(64)  # default threshold 20,000: switches to HNSW on the way
    for start in range(0, 30_000, 5000):
        index.add(ids[start : start + 5000], x[start : start + 5000])
    assert index.is_hnsw and len(index) == 30_000
    truth, _ = exact.search(q, 10)
    rows, scores = index.search(q, 10)
    assert _recall(truth, rows) >= 0.95
    # scores are real inner products of the returned rows, best first
    pos = (rows - 3) // 7
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[pos]), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_hnsw_l2_scores_are_negated_squared_distances() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    q = rng.standard_normal((20, 16)).astype(np.float32)
    index = DenseIndex(16, metric="l2", exact_threshold=0)
    index.add(np.arange(2000), x)
    rows, scores = index.search(q, 5)
    want_rows, want_scores = _brute_force(x, np.arange(2000), q, 5, "l2")
    assert index.is_hnsw and _recall(want_rows, rows) >= 0.95
    np.testing.assert_allclose(scores, -((q[:, None, :] - x[rows]) ** 2).sum(-1), rtol=1e-4)


@pytest.mark.parametrize("threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_deleted_rows_never_return_and_rows_can_come_back(threshold: int) -> None:
    x, q = _clustered(3000, 50, 32, seed=4)
    ids = np.arange(100, 3100, dtype=np.int64)
    index = DenseIndex(32, exact_threshold=threshold)
    index.add(ids, x)
    top, _ = index.search(q, 10)
    # delete every current top hit of every query, plus a third of everything
    gone = np.union1d(top.ravel(), ids[::3])
    index.delete(gone)
    index.delete(np.array([10**12]))  # unknown rows are ignored
    assert len(index) == 3000 - len(gone)
    np.testing.assert_array_equal(index.rows(), np.setdiff1d(ids, gone))
    rows, _ = index.search(q, 50)
    assert not np.isin(rows, gone).any() and (rows >= 0).all()
    rows, _ = index.search(x[ids.searchsorted(gone[:20])], 1)
    assert not np.isin(rows, gone).any()

    # a deleted row re-added, and brand-new rows, are found again by their own vectors
    back = gone[:10]
    fresh = _unit(np.random.default_rng(5).standard_normal((40, 32)))
    new_ids = np.arange(10_000, 10_040)
    index.add(back, x[ids.searchsorted(back)])
    index.add(new_ids, fresh)
    assert len(index) == 3000 - len(gone) + 10 + 40
    rows, scores = index.search(np.vstack([x[ids.searchsorted(back)], fresh]), 1)
    np.testing.assert_array_equal(rows[:, 0], np.concatenate([back, new_ids]))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    if threshold == 0:
        # new rows took the slots of deleted ones instead of growing the graph
        assert index._hnsw.element_count == 3000


def test_hnsw_after_mass_deletion_still_returns_all_survivors() -> None:
    # few live nodes among many deleted ones, and an ef as small as k: the search must
    # still reach every survivor (through deleted nodes, or the exact fallback)
    x = _unit(np.random.default_rng(11).standard_normal((2000, 16)))
    index = DenseIndex(16, exact_threshold=0, ef_search=10)
    index.add(np.arange(2000), x)
    survivors = np.arange(0, 2000, 200)
    index.delete(np.setdiff1d(np.arange(2000), survivors))
    rows, scores = index.search(x[:5], 10)
    want_rows, want_scores = _brute_force(x[survivors], survivors, x[:5], 10, "ip")
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_re_adding_a_row_replaces_its_vector(threshold: int) -> None:
    x = _unit(np.random.default_rng(6).standard_normal((500, 16)))
    index = DenseIndex(16, exact_threshold=threshold)
    index.add(np.arange(500), x)
    index.add(np.array([7, 7]), np.vstack([x[1], x[300]]))  # twice in a batch: last wins
    assert len(index) == 500
    rows, scores = index.search(x[300:301], 2)
    assert sorted(rows[0].tolist()) == [7, 300] and np.allclose(scores[0], 1.0, atol=1e-5)
    rows, _ = index.search(x[7:8], 1)
    assert rows[0, 0] != 7


def test_filter_small_and_large_allowed_sets() -> None:
    x, q = _clustered(6000, 40, 32, seed=7)
    ids = np.arange(6000, dtype=np.int64) * 2
    index = DenseIndex(32, exact_threshold=1000)
    index.add(ids, x)
    assert index.is_hnsw
    rng = np.random.default_rng(8)
    for size in (300, 3000):  # under the threshold: exact over the subset; over: HNSW filter
        allowed = np.sort(rng.choice(ids, size, replace=False))
        # rows unknown to the index (e.g. chunks without a vector) may be in a filter
        with_unknown = np.sort(np.concatenate([allowed, [1, 3, 5]]))
        rows, _ = index.search(q, 10, with_unknown)
        assert np.isin(rows, allowed).all()
        mask = np.isin(ids, allowed)
        truth, _ = _brute_force(x[mask], ids[mask], q, 10, "ip")
        if size <= index.exact_threshold:
            np.testing.assert_array_equal(rows, truth)
        else:
            assert _recall(truth, rows) >= 0.95
    few = ids[[5, 17]]
    rows, _ = index.search(q[:3], 5, few)
    assert (np.sort(rows[:, :2], axis=1) == few).all() and (rows[:, 2:] == -1).all()
    rows, _ = index.search(q[:3], 5, np.array([], dtype=np.int64))
    assert (rows == -1).all()


@pytest.mark.parametrize("threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_save_load_round_trip(tmp_path: Path, threshold: int) -> None:
    x, q = _clustered(2000, 30, 24, seed=9)
    index = DenseIndex(24, metric="ip", exact_threshold=threshold, M=12, ef_search=64)
    index.add(np.arange(2000) + 50, x)
    index.delete(np.arange(50, 250))
    index.save(tmp_path / "d")
    index.add(np.array([99_999]), x[:1])
    index.save(tmp_path / "d")  # second generation replaces the first
    loaded = DenseIndex.load(tmp_path / "d")
    assert (loaded.is_hnsw, loaded.M, loaded.ef_search) == (index.is_hnsw, 12, 64)
    np.testing.assert_array_equal(loaded.rows(), index.rows())
    for a, b in zip(loaded.search(q, 10), index.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["generation"] == 2 and names == sorted(
        ["manifest.json", *manifest["files"].values()]
    )
    # the loaded index keeps working: deletes, slot reuse and re-adds
    loaded.delete(np.array([99_999]))
    loaded.add(np.array([120_000]), x[1:2])
    rows, _ = loaded.search(x[1:2], 2)
    assert 120_000 in rows[0] and 99_999 not in rows[0]


def test_threshold_switch() -> None:
    x = _unit(np.random.default_rng(10).standard_normal((700, 16)))
    index = DenseIndex(16, exact_threshold=500)
    index.add(np.arange(499), x[:499])
    assert not index.is_hnsw
    before, _ = index.search(x[:50], 1)
    index.add(np.array([499]), x[499:500])
    assert index.is_hnsw and len(index) == 500
    after, _ = index.search(x[:50], 1)
    np.testing.assert_array_equal(before, after)
    index.delete(np.arange(300))  # below the threshold again: stays HNSW
    index.add(np.arange(500, 700), x[500:])
    assert index.is_hnsw and len(index) == 400
    rows, _ = index.search(x[500:], 1)
    np.testing.assert_array_equal(rows[:, 0], np.arange(500, 700))


_SAVER = """
import sys
import numpy as np
from pathlib import Path
from mmrag.index.dense import DenseIndex
rng = np.random.default_rng(0)
x = rng.standard_normal((30_000, 32)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
index = DenseIndex(32, exact_threshold=int(sys.argv[2]))
n = 1000
while True:
    index.add(np.arange(n, n + 500), x[n : n + 500])
    n += 500
    index.save(Path(sys.argv[1]))
    print(n, flush=True)
    if n >= 29_000:
        index.delete(np.arange(1000, n))
        n = 1000
"""


@pytest.mark.parametrize("threshold", [10**9, 5000], ids=["exact", "hnsw"])
def test_crash_mid_save_leaves_a_loadable_copy(tmp_path: Path, threshold: int) -> None:
    x = _unit(np.random.default_rng(0).standard_normal((30_000, 32)).astype(np.float32))
    target = tmp_path / "d"
    for delay in (0.9, 1.3, 1.7):
        child = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(target), str(threshold)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()  # at least one complete save exists
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        index = DenseIndex.load(target)
        rows = index.rows()
        # a complete generation: rows 1000 .. n, each with its own vector
        np.testing.assert_array_equal(rows, np.arange(1000, 1000 + len(rows)))
        probe = rows[:: max(1, len(rows) // 50)]
        found, _ = index.search(x[probe], 1)
        np.testing.assert_array_equal(found[:, 0], probe)


def test_bad_input_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DenseIndex(8, metric="cosine-ish")
    index = DenseIndex(8)
    with pytest.raises(ValueError):
        index.add(np.arange(3), np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add(np.arange(2), np.full((2, 8), np.nan, dtype=np.float32))
    with pytest.raises(ConfigError):
        index.search(np.zeros((1, 8), dtype=np.float32), 0)
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 9), dtype=np.float32), 3)
    with pytest.raises(StoreError):
        DenseIndex.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError):
        DenseIndex.load(tmp_path / "bad")
    # a save over a corrupt copy starts a fresh generation
    index.add(np.arange(3), np.eye(3, 8, dtype=np.float32))
    index.save(tmp_path / "bad")
    np.testing.assert_array_equal(DenseIndex.load(tmp_path / "bad").rows(), [0, 1, 2])
