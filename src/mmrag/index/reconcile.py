"""Bringing a saved derived index back in line with SQLite, in proportion to what changed.

The store's writes and deletes record every row they touch in the `changes` table, in
the same transaction as the rows themselves. A checkpoint saves each derived index
stamped ("tagged") with the number of the checkpoint it is completing, and only then,
in one transaction, empties `changes` and stores that number in meta. So on open:

- a file tagged with the store's checkpoint number N misses at most the rows in
  `changes`; one tagged N + 1 was saved by a checkpoint that died before its commit,
  and misses at most those rows too. Either way only those rows are compared;
- any other tag (none: written before the log existed, a file older than the last
  checkpoint, a copy from elsewhere; or no file) is compared row by row against
  every live row, as every open used to be.

Comparing means: a row the index has and SQLite no longer has is deleted from it; a
row SQLite has and the index lacks is added. Row ids are never reused, so that is all
a change can be. A reader opening while a writer checkpoints reads the file first and
then `changes` in one SQLite snapshot: a file replaced meanwhile carries a tag the
snapshot does not accept, which sends it down the full comparison.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LOG = "log"
FULL = "full"


class Derived(Protocol):
    """What reconciliation needs of an index (SparseIndex and DenseIndex have it)."""

    tag: int | None

    def __len__(self) -> int: ...

    def rows(self) -> np.ndarray: ...

    def contains(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Plan:
    """What an index lacks and holds in excess, and how that was found."""

    mode: str  # LOG: only the logged rows were compared; FULL: every row
    compared: int  # rows looked at on the SQLite side
    stale: np.ndarray  # rows to delete from the index
    missing: np.ndarray  # rows to add to it

    @property
    def changes(self) -> bool:
        return bool(len(self.stale) or len(self.missing))

    def report(self) -> dict[str, int | str]:
        return {
            "mode": self.mode,
            "compared": self.compared,
            "deleted": len(self.stale),
            "added": len(self.missing),
        }


def record(db: sqlite3.Connection, rows: Iterable[int]) -> None:
    """Log rows written or deleted; call inside the transaction that changes them."""
    db.executemany("INSERT OR IGNORE INTO changes(row) VALUES (?)", ((int(r),) for r in rows))


def logged_rows(db: sqlite3.Connection) -> np.ndarray:
    found = db.execute("SELECT row FROM changes ORDER BY row").fetchall()
    return np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))


def has_changes(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT EXISTS (SELECT 1 FROM changes)").fetchone()[0] == 1


def clear(db: sqlite3.Connection) -> None:
    """Forget the log; call in the transaction that records the new checkpoint number."""
    db.execute("DELETE FROM changes")


def log_covers(tag: int | None, checkpoint: int | None) -> bool:
    """Whether the log holds every change since the index copy tagged `tag` was saved."""
    return tag is not None and checkpoint is not None and tag in (checkpoint, checkpoint + 1)


def plan(
    index: Derived,
    checkpoint: int | None,
    logged: Callable[[], np.ndarray],
    live_among: Callable[[np.ndarray], np.ndarray],
    all_live: Callable[[], np.ndarray],
) -> Plan:
    """Compare `index` with SQLite: over the logged rows when the log covers its copy.

    `live_among(rows)` gives those of `rows` that are live in SQLite and `all_live()`
    every live row, both sorted; `logged()` the rows of the change log, sorted.
    """
    if log_covers(index.tag, checkpoint):
        candidates = logged()
        live = np.isin(candidates, live_among(candidates), assume_unique=True)
        have = index.contains(candidates) if len(candidates) else np.zeros(0, dtype=bool)
        return Plan(LOG, len(candidates), candidates[have & ~live], candidates[live & ~have])
    live_rows = all_live()
    have_rows = index.rows() if len(index) else np.empty(0, dtype=np.int64)
    return Plan(
        FULL,
        len(live_rows),
        np.setdiff1d(have_rows, live_rows, assume_unique=True),
        np.setdiff1d(live_rows, have_rows, assume_unique=True),
    )
