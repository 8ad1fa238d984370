"""Named crash points and a commit log, for the crash harness (tests/faults, bench/faults.py).

mmrag promises that `kill -9` at any moment keeps every committed batch. Killing a
process at a random moment rarely lands between two particular write steps, so the
store's write paths name those moments, and a harness picks one:

    MMRAG_CRASH_AT=<point>[:<nth>]   SIGKILL this process the nth time (default 1st)
                                     it reaches <point> (the names are in POINTS)
    MMRAG_COMMIT_LOG=<file>          append one JSON line per store operation, written
                                     inside its transaction just before the commit

The log is what the writer was told: every operation but the last one logged has
committed (the next line is only written after it returned), and the last one either
committed whole or not at all. The checker (index/invariants.py) replays it.

Both variables are read once, at import. Unset, `point` and the log functions are
no-ops bound at import, so the store pays one call per write step and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmrag.index.batch import Batch

CRASH_ENV = "MMRAG_CRASH_AT"
LOG_ENV = "MMRAG_COMMIT_LOG"

# Every point the code names, in the order a write, a checkpoint and an upload reach them.
POINTS = (
    "write.before_commit",  # rows inserted, transaction not yet committed
    "write.after_commit",  # committed; derived indexes not yet updated in memory
    "delete.before_commit",
    "delete.after_commit",
    "checkpoint.start",  # nothing of this checkpoint saved
    "sparse.before_replace",  # new sparse file written and fsynced, not yet renamed
    "checkpoint.after_sparse",  # sparse saved (tagged N+1), dense not
    "dense.before_manifest",  # a dense generation's data files written, manifest not
    "dense.before_cleanup",  # manifest replaced, previous generation not yet removed
    "checkpoint.after_dense",  # every derived index saved, log not yet cleared
    "checkpoint.after_commit",  # log cleared and checkpoint number stored
    "upload.staged",  # an upload's bytes written to its staging folder
    "upload.moved",  # moved to uploads/<hash>/<name>, not yet indexed
    "upload.removed_rows",  # a deleted upload's rows committed, its file not yet removed
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{CRASH_ENV}={value!r}: unknown point; known: {', '.join(POINTS)}")
    return name, int(nth or 1)


_TARGET = _parse(os.environ.get(CRASH_ENV))
_LOG_PATH = os.environ.get(LOG_ENV) or None
_reached = 0


def _nothing(*_: object) -> None:
    return None


def _crash_at(name: str) -> None:
    global _reached
    assert _TARGET is not None
    if name != _TARGET[0]:
        return
    _reached += 1
    if _reached == _TARGET[1]:
        # SIGKILL, not an exception or sys.exit: no finally, no atexit, no flush, as kill -9.
        os.kill(os.getpid(), signal.SIGKILL)


def _append(entry: dict[str, object]) -> None:
    assert _LOG_PATH is not None
    # One unbuffered O_APPEND write per line: the kernel keeps it if the process dies next.
    fd = os.open(_LOG_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _log_write(batch: Batch) -> None:
    _append(
        {
            "op": "write",
            "sources": [s.source_id for s in batch.sources],
            "docs": [[d.id, d.source_id] for d in batch.docs],
        }
    )


def _log_delete_sources(source_ids: Sequence[str]) -> None:
    _append({"op": "delete_sources", "sources": list(source_ids)})


def _log_delete(doc_ids: Sequence[str]) -> None:
    _append({"op": "delete", "docs": list(doc_ids)})


point = _crash_at if _TARGET is not None else _nothing
log_write = _log_write if _LOG_PATH else _nothing
log_delete_sources = _log_delete_sources if _LOG_PATH else _nothing
log_delete = _log_delete if _LOG_PATH else _nothing
