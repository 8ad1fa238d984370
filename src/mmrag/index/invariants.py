"""What must hold of an embedded store after a crash, and why a document was not found.

The crash harness (tests/faults, bench/faults.py) reopens a store after killing its
writer and asks this module. It lives in the package, not in tests/, because the bench
and the tests both use it and because it reads nothing but a store: SQLite, the sparse
index and the dense indexes, as the store opened them.

A committed document a search does not return can mean three different things, and
the checks are built to tell them apart:

- LOST: SQLite does not hold it. The promise is broken.
- STALE: SQLite holds it but a derived index does not agree (the row is missing from
  it, or the index keeps another vector or other terms for it): catching up on open
  went wrong.
- RANKING: SQLite and every index agree, and the search still ranked it below k: an
  identical or dominating vector (a tie, a duplicate text), an ANN graph missing it,
  or a query that is not the document's own vector. Not a store defect.

What was committed comes from the writer's own log (index/faults.py, MMRAG_COMMIT_LOG):
every logged operation but the last committed; the last one committed whole or not at
all, so SQLite must equal the log replayed either with or without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.index.bm25 import BM25Params
from mmrag.index.dense import DenseIndex
from mmrag.index.store import EmbeddedStore

LOST = "lost"
STALE = "stale-derived"
RANKING = "ranking"
CAUSES = (LOST, STALE, RANKING)
# Relative tolerance for "the same score": float32 dot products summed in another order.
_SCORE_TOL = 1e-4
_DENSE_K = 10


@dataclass(frozen=True)
class Miss:
    """A committed document a check did not find, and why."""

    doc_id: str
    check: str  # "sqlite" | "bm25" | "dense:<field>"
    cause: str  # LOST | STALE | RANKING
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"doc": self.doc_id, "check": self.check, "cause": self.cause, "detail": self.detail}


@dataclass
class Report:
    """The outcome of `check_store`: `ok` unless something was lost or is stale."""

    documents: int = 0  # committed documents checked
    last_committed: bool | None = None  # whether the log's last operation is in SQLite
    problems: list[str] = field(default_factory=list)  # store-wide: counts, duplicates
    misses: list[Miss] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)  # lookups run, per check

    @property
    def ok(self) -> bool:
        return not self.problems and all(m.cause == RANKING for m in self.misses)

    def causes(self) -> dict[str, int]:
        return {c: sum(1 for m in self.misses if m.cause == c) for c in CAUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "documents": self.documents,
            "last_committed": self.last_committed,
            "problems": self.problems,
            "causes": self.causes(),
            "checks": self.checks,
            "misses": [m.to_dict() for m in self.misses[:20]],
        }


# ---- the writer's log ------------------------------------------------------------------


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The operations a writer logged (a line cut short by the kill is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            break  # only the last line can be cut short
    return entries


@dataclass
class Expected:
    """Documents (id -> source id) and sources a replayed log says are stored."""

    docs: dict[str, str] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)


def replay(entries: Iterable[dict[str, Any]]) -> Expected:
    """Apply logged operations as the store does (a write replaces its sources and ids)."""
    out = Expected()
    by_source: dict[str, set[str]] = {}

    def drop_source(source: str) -> None:
        for doc in by_source.pop(source, set()):
            out.docs.pop(doc, None)
        out.sources.discard(source)

    def drop_doc(doc: str) -> None:
        source = out.docs.pop(doc, None)
        if source is not None:
            by_source[source].discard(doc)

    for entry in entries:
        if entry["op"] == "write":
            for source in entry["sources"]:
                drop_source(source)
            for doc, _ in entry["docs"]:
                drop_doc(doc)
            out.sources.update(entry["sources"])
            for doc, source in entry["docs"]:
                out.docs[doc] = source
                by_source.setdefault(source, set()).add(doc)
        elif entry["op"] == "delete_sources":
            for source in entry["sources"]:
                drop_source(source)
        elif entry["op"] == "delete":
            for doc in entry["docs"]:
                drop_doc(doc)
        else:
            raise ValueError(f"unknown logged operation {entry['op']!r}")
    return out


# ---- the checks ------------------------------------------------------------------------


def check_store(
    store: EmbeddedStore,
    log: Sequence[dict[str, Any]],
    *,
    marker: str | None = None,
    last_committed: bool | None = None,
) -> Report:
    """Check a reopened store against its writer's log.

    `marker` is a regular expression for tokens unique to one source (a test corpus
    puts one in each file): every committed document holding one must be the BM25 hit
    for it. `last_committed`, when the harness knows (it crashed the writer at a point
    after or before a commit), is what the last logged operation must have done.
    """
    report = Report()
    docs = _stored_docs(store)
    expected = _check_log(store, log, docs, last_committed, report)
    report.documents = len(expected)
    rows = {doc: docs[doc][0] for doc in expected if doc in docs}
    _check_row_sets(store, report)
    _check_duplicates(store, report)
    if marker is not None:
        _check_markers(store, rows, re.compile(marker), report)
    for name in store.dense:
        _check_dense(store, name, rows, report)
    return report


def _stored_docs(store: EmbeddedStore) -> dict[str, tuple[int, str]]:
    """id -> (row, source id) of every chunk in SQLite."""
    return {
        doc: (row, source)
        for row, doc, source in store.db.execute("SELECT row, id, source_id FROM chunks")
    }


def _check_log(
    store: EmbeddedStore,
    log: Sequence[dict[str, Any]],
    docs: dict[str, tuple[int, str]],
    last_committed: bool | None,
    report: Report,
) -> dict[str, str]:
    """SQLite must equal the log with or without its last operation; returns the
    documents that must be there (those of the state SQLite matches, else of both)."""
    before, after = replay(log[:-1]), replay(log)
    stored = {doc: source for doc, (_, source) in docs.items()}
    sources = {s for (s,) in store.db.execute("SELECT source_id FROM sources")}
    matches = {
        True: stored == after.docs and sources == after.sources,
        False: stored == before.docs and sources == before.sources,
    }
    allowed = [last_committed] if last_committed is not None else [True, False]
    for state in allowed:
        if matches[state]:
            report.last_committed = state
            return after.docs if state else before.docs
    # Neither state: report what must have survived either way as lost, and the rest.
    required = {
        d: s
        for d, s in (after.docs if last_committed else before.docs).items()
        if last_committed is not None or after.docs.get(d) == s
    }
    for doc in sorted(set(required) - set(stored)):
        report.misses.append(Miss(doc, "sqlite", LOST, f"logged as committed ({required[doc]})"))
    possible = set(before.docs) | set(after.docs)
    unexplained = sorted(set(stored) - possible)
    if unexplained:
        report.problems.append(f"{len(unexplained)} stored documents no operation logged")
    if not report.misses and not unexplained:
        half = "" if last_committed is None else f" (expected committed={last_committed})"
        report.problems.append(f"the last logged operation is neither whole nor absent{half}")
    return {d: s for d, s in required.items() if d in stored}


def _check_row_sets(store: EmbeddedStore, report: Report) -> None:
    """Each derived index holds exactly the rows SQLite holds for it."""
    live = store._live_rows("SELECT row FROM chunks ORDER BY row")
    _compare_rows("sparse", live, store.sparse.rows(), report)
    for name, index in store.dense.items():
        rows = store._live_rows("SELECT row FROM vectors WHERE field=? ORDER BY row", (name,))
        _compare_rows(f"dense:{name}", rows, index.rows(), report)


def _compare_rows(what: str, live: np.ndarray, held: np.ndarray, report: Report) -> None:
    missing = np.setdiff1d(live, held)
    extra = np.setdiff1d(held, live)
    if len(missing) or len(extra):
        report.problems.append(
            f"{what}: {len(missing)} SQLite rows missing from the index, "
            f"{len(extra)} rows only in the index (stale)"
        )


def _check_duplicates(store: EmbeddedStore, report: Report) -> None:
    """No chunk stored twice (same source, place and text), no file under two sources."""
    (twice,) = store.db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM chunks GROUP BY source_id, span, text"
        " HAVING COUNT(*) > 1)"
    ).fetchone()
    if twice:
        report.problems.append(f"{twice} chunks stored more than once")
    (paths,) = store.db.execute(
        "SELECT COUNT(*) FROM (SELECT path FROM sources s WHERE path IS NOT NULL"
        " AND source_id = path GROUP BY path HAVING COUNT(*) > 1)"
    ).fetchone()
    if paths:
        report.problems.append(f"{paths} files stored under more than one source")


def _check_markers(
    store: EmbeddedStore, rows: dict[str, int], marker: re.Pattern[str], report: Report
) -> None:
    """BM25 for a document's unique marker token returns it among the documents holding it."""
    holders: dict[str, list[int]] = {}  # marker term -> SQLite rows whose tokens hold it
    for row, tokens in store.db.execute("SELECT row, tokens FROM chunks"):
        for term in set(tokens.split(" ")):
            if marker.fullmatch(term):
                holders.setdefault(term, []).append(row)
    by_row = {row: doc for doc, row in rows.items()}
    wanted = [(term, held) for term, held in holders.items() if any(r in by_row for r in held)]
    report.checks["bm25"] = sum(sum(r in by_row for r in held) for _, held in wanted)
    sparse_rows = set(store.sparse.rows().tolist())
    params = BM25Params()
    for term, held in wanted:
        # Only documents holding the term score at all, so a k past their number costs
        # nothing and leaves room for rows the index keeps that SQLite lost (a problem
        # reported apart).
        found = store.sparse.search_many([[term]], len(held) + 10, params, None)[0][0]
        hits = set(found[found >= 0].tolist())
        for row in held:
            if row not in by_row or row in hits:
                continue
            why = "not in the sparse index" if row not in sparse_rows else "indexed without it"
            report.misses.append(Miss(by_row[row], "bm25", STALE, f"marker {term}: {why}"))


def _check_dense(store: EmbeddedStore, name: str, rows: dict[str, int], report: Report) -> None:
    """Every committed vector: the index holds the same one, and a search for it returns
    its row first (or tied with identical or better-scoring vectors, checked in SQLite)."""
    index = store.dense[name]
    dim = store.fields()[name]["dim"]
    got, stored = store._vectors_for(name, sorted(rows.values()), dim)
    if not len(got):
        return
    by_row = {row: doc for doc, row in rows.items()}
    check = f"dense:{name}"
    report.checks[check] = len(got)
    held = index.contains(got)
    same = np.zeros(len(got), dtype=bool)
    if held.any():
        mine = _index_vectors(index, got[held])
        same[held] = np.all(np.isclose(mine, stored[held], rtol=_SCORE_TOL, atol=1e-6), axis=1)
    for i in np.flatnonzero(~same):
        why = "not in the dense index" if not held[i] else "the index keeps another vector"
        report.misses.append(Miss(by_row[int(got[i])], check, STALE, why))
    k = min(_DENSE_K, len(index))
    found, scores = index.search(stored, k)
    own = _self_scores(index.metric, stored)
    for i in np.flatnonzero(same):
        row = int(got[i])
        if row in found[i]:
            at = int(np.flatnonzero(found[i] == row)[0])
            if _close(scores[i, at], own[i]) and _ties_above(index, stored, i, found[i][:at]):
                continue
        report.misses.append(Miss(by_row[row], check, *_why_not_first(store, name, index, i, row)))


def _self_scores(metric: str, vectors: np.ndarray) -> np.ndarray:
    if metric == "ip":
        return (vectors * vectors).sum(axis=1)
    return np.zeros(len(vectors), dtype=np.float32)


def _close(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= _SCORE_TOL * max(1.0, abs(float(b)))


def _ties_above(index: DenseIndex, vectors: np.ndarray, i: int, above: np.ndarray) -> bool:
    """Whether every row ranked above the query's own one ties with it (an identical
    vector, or one as close); one that scores higher is a ranking effect, reported."""
    if not len(above):
        return True
    theirs = _index_vectors(index, above.astype(np.int64))
    own = _self_scores(index.metric, vectors[i : i + 1])[0]
    return all(_close(s, own) for s in _scores(index.metric, vectors[i], theirs))


def _scores(metric: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    if metric == "ip":
        return vectors @ query
    return -((vectors - query) ** 2).sum(axis=1)


def _why_not_first(
    store: EmbeddedStore, name: str, index: DenseIndex, i: int, row: int
) -> tuple[str, str]:
    """The index holds the right vector but did not rank it first: ties, or the graph."""
    query = store._vectors_for(name, [row], index.dim)[1][0]
    all_rows, all_vecs = store._vectors_for(name, index.rows().tolist(), index.dim)
    scores = _scores(index.metric, query, all_vecs)
    own = float(scores[all_rows == row][0])
    better = int(np.sum(scores > own + _SCORE_TOL * max(1.0, abs(own))))
    tied = int(np.sum(np.abs(scores - own) <= _SCORE_TOL * max(1.0, abs(own)))) - 1
    if better or tied >= _DENSE_K:
        return RANKING, f"{better} vectors score higher and {tied} the same (exact, in SQLite)"
    if index.is_hnsw:
        return RANKING, "first by exact search; the HNSW graph did not return it"
    return STALE, "first by exact search over SQLite, not returned by the exact index"


def _index_vectors(index: DenseIndex, rows: np.ndarray) -> np.ndarray:
    """The vectors the index itself holds for rows it holds.

    Reaches into DenseIndex on purpose: the point is to compare its private copy with
    SQLite, and no search can show that directly.
    """
    if index.is_hnsw:
        return np.asarray(index._hnsw.get_items(rows, return_type="numpy"), dtype=np.float32)
    present, lines = index._lines_of(rows)
    if not present.all():
        raise ValueError("rows not held by the index")
    return index._matrix[lines]


# ---- after a finished run -------------------------------------------------------------


def fingerprint(store: EmbeddedStore) -> list[tuple[str, str, str]]:
    """Every chunk as (source id, source content hash, text), sorted: two stores built
    from the same files hold the same fingerprint, whatever crashes came between."""
    return sorted(
        store.db.execute(
            "SELECT c.source_id, s.content_hash, c.text FROM chunks c"
            " JOIN sources s ON s.source_id = c.source_id"
        ).fetchall()
    )
