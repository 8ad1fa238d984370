"""The embedded store: one directory, no server.

SQLite (WAL) holds documents, their analysed tokens and their vectors, and is the source
of truth. The sparse index and one dense index per vector field are derived from it,
kept in memory, and saved beside it at checkpoints. On open, each derived index is
brought back in line with SQLite (rows added or deleted since its last save), so a
crash at any moment, kill -9 included, loses at most the batch that had not committed.
Writes log the rows they touch, so that this costs what changed since the last
checkpoint, not the size of the store (index/reconcile.py).

One store may be shared by threads (a server's searches and its uploads). Every call
holds the store's lock, so a search sees the store before or after a write, never
half of one, while the slow parts around the store (encoding queries or documents)
run outside it, in parallel. The calls themselves are short: SQLite lookups, the BM25
kernel and a matrix product, which hold the GIL anyway.

Between processes, one writer at a time holds the store's lock file; a second one is
refused at once or waits up to `lock_timeout`. Readers (`read_only`) take no lock: each
open reads the derived files and then one SQLite snapshot, so it sees whole batches.
A derived file that fails its checks (a checksum, its sizes) is rebuilt from SQLite
with a warning; a damaged SQLite file is a StoreError that names `mmrag doctor`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from importlib import resources
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from mmrag.errors import StoreError
from mmrag.index import faults, reconcile
from mmrag.index.analyzer import Analyzer
from mmrag.index.base import Candidates, Scored, Store, field_exists
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.corruption import damaged_store, doctor_hint, is_damage
from mmrag.index.dense import DenseIndex
from mmrag.index.fields import TEXT, FieldSpec
from mmrag.index.filters import to_sql
from mmrag.index.reconcile import Plan
from mmrag.index.sparse import SparseIndex
from mmrag.threads import QUERY_BLAS_THREADS, blas_threads
from mmrag.types import Document, Modality, Span

__all__ = [
    "Batch",
    "EmbeddedStore",
    "FieldVectors",
    "SourceInfo",
    "default_store_path",
    "writer_lock",
]

SCHEMA_VERSION = "1"
DB_NAME = "mmrag.sqlite"
SPARSE_FILE = "sparse.idx"
DENSE_PREFIX = "dense-"  # + field name: one folder per vector field
_SQL_CHUNK = 900  # stay under SQLite's bound-parameter limit
_LOCK_POLL = 0.1  # seconds between tries while waiting for another writer
LOCK_FILE = ".lock"

log = logging.getLogger(__name__)


def _chunks(seq: Sequence[Any], size: int = _SQL_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


_P = ParamSpec("_P")
_R = TypeVar("_R")
_I = TypeVar("_I", SparseIndex, DenseIndex)


def _locked(
    method: Callable[Concatenate[EmbeddedStore, _P], _R],
) -> Callable[Concatenate[EmbeddedStore, _P], _R]:
    """Run a store method holding the store's lock (re-entrant: methods call each other).

    A damaged SQLite file can surface in any statement: it becomes a StoreError naming
    `mmrag doctor` rather than a traceback."""

    @wraps(method)
    def run(self: EmbeddedStore, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._guarded():
            return method(self, *args, **kwargs)

    return run


def writer_lock(path: Path, timeout: float | None = 0.0) -> IO[str]:
    """Take a store folder's writer lock: the open lock file, which holds it until closed.

    One writer per store: a second writer would save derived indexes that miss the first
    one's rows. The lock dies with the process, so kill -9 frees it. `timeout`: seconds to
    wait for the holder (0: refuse at once; None: wait as long as it takes).
    """
    # "a+": opening must not truncate the holder's pid before we hold the lock.
    handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - the caller holds it
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                waited = f" (waited {timeout:g} s)" if timeout else ""
                raise StoreError(
                    f"store {path} is open for writing by another process (pid {holder})"
                    f"{waited}; wait for it to finish, or give a lock timeout (--wait SECONDS)"
                ) from exc
            time.sleep(_LOCK_POLL)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class EmbeddedStore(Store):
    """Documents, a sparse index and dense indexes in one directory.

    `lock_timeout`: seconds a writer waits for another process's writer to close the
    store (0: refuse at once, the default; None: wait as long as it takes).
    """

    sole_writer = True  # the .lock file: see _acquire_lock

    def __init__(
        self,
        path: str | Path,
        *,
        analyzer: Analyzer | None = None,
        create: bool = True,
        read_only: bool = False,
        lock_timeout: float | None = 0.0,
    ) -> None:
        if lock_timeout is not None and lock_timeout < 0:
            raise ValueError(f"lock_timeout must be >= 0 or None, got {lock_timeout}")
        self.path = Path(path).expanduser()
        self.read_only = read_only
        # One SQLite connection and in-memory indexes (whose searches reuse scratch
        # arrays and caches), so one thread at a time; see the module note.
        self._lock = threading.RLock()
        if not (self.path / DB_NAME).exists():
            if not create or read_only:
                raise StoreError(f"no mmrag store at {self.path} (index something first)")
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = None if read_only else writer_lock(self.path, lock_timeout)
        # What opening found each derived index to lack: {"sparse" | "dense:<field>":
        # {"mode": "log" | "full", "compared": rows, "added": n, "deleted": n}}.
        self.reconciled: dict[str, dict[str, Any]] = {}
        # Derived indexes whose file failed its checks and was rebuilt: {key: reason}.
        self.rebuilt: dict[str, str] = {}
        self.sparse = SparseIndex()
        self.dense: dict[str, DenseIndex] = {}
        self.db = None  # type: ignore[assignment]
        try:
            self.db = self._connect()
            self.analyzer = self._check_analyzer(analyzer)
            self._load_indexes()
        except BaseException as exc:
            if self.db is not None:
                self.db.close()
            if self._lock_file is not None:
                self._lock_file.close()
            if isinstance(exc, sqlite3.DatabaseError) and is_damage(exc):
                raise damaged_store(self.path, self.path / DB_NAME, exc) from exc
            raise

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Hold the store's lock; a damaged SQLite file met meanwhile is a StoreError."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged_store(self.path, self.path / DB_NAME, exc) from exc
                raise

    # ---- opening -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db_path = self.path / DB_NAME
        try:
            if self.read_only:
                db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(db_path, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(resources.files("mmrag.index").joinpath("schema.sql").read_text())
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )
                db.commit()
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise StoreError(f"{db_path} cannot be opened: {exc}") from exc
            raise StoreError(
                f"{db_path} is not a readable mmrag store ({exc}): {doctor_hint(self.path)}"
            ) from exc
        if version is None or version[0] != SCHEMA_VERSION:
            raise StoreError(f"{db_path} has schema {version}, this mmrag reads {SCHEMA_VERSION}")
        return db

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def _check_analyzer(self, analyzer: Analyzer | None) -> Analyzer:
        stored = self._meta("analyzer")
        if stored is None:
            analyzer = analyzer or Analyzer()
            if not self.read_only:
                with self.db:
                    self._set_meta("analyzer", analyzer.to_dict())
            return analyzer
        if analyzer is not None and analyzer.to_dict() != stored:
            raise StoreError(
                f"store {self.path} was built with analyzer {stored}; "
                f"asked for {analyzer.to_dict()} (use a new store to change it)"
            )
        return Analyzer.from_dict(stored)

    @_locked
    def fields(self) -> dict[str, dict[str, Any]]:
        return self._meta("fields") or {}

    @_locked
    def ensure_field(
        self, name: str, dim: int, encoder: dict[str, Any], *, space: str = TEXT
    ) -> None:
        current = self.fields()
        if field_exists(current, name, dim, encoder, space):
            return
        current[name] = FieldSpec(space, dim, encoder).to_dict()
        with self.db:
            self._set_meta("fields", current)
        self.dense[name] = DenseIndex(dim)

    @_locked
    def index_config(self) -> dict[str, Any] | None:
        return self._meta("index_config")

    @_locked
    def set_index_config(self, config: dict[str, Any]) -> None:
        self._check_writable()
        with self.db:
            self._set_meta("index_config", config)

    def _live_rows(self, sql: str, params: Sequence[Any] = ()) -> np.ndarray:
        rows = self.db.execute(sql, params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def _load_indexes(self) -> None:
        """Load the saved derived indexes, then bring them in line with SQLite."""
        sparse_file = self.path / SPARSE_FILE
        self.sparse = (
            self._saved("sparse", lambda: SparseIndex.load(sparse_file), SparseIndex)
            if sparse_file.exists()
            else SparseIndex()
        )
        for name, info in self.fields().items():
            folder = self.path / f"{DENSE_PREFIX}{name}"
            self.dense[name] = (
                self._saved(
                    f"dense:{name}",
                    lambda f=folder: DenseIndex.load(f),
                    lambda d=info["dim"]: DenseIndex(d),
                )
                if (folder / "manifest.json").exists()
                else DenseIndex(info["dim"])
            )
        # One snapshot for the checkpoint number, the log and the rows read for it: the
        # files were read first, so a checkpoint by a writer meanwhile shows (see
        # reconcile.py). Nothing is written here.
        self.db.execute("BEGIN")
        try:
            checkpoint = self._meta("checkpoint")
            log = _Once(lambda: reconcile.logged_rows(self.db))
            plans = {"sparse": self._plan_sparse(checkpoint, log)}
            for name in self.dense:
                plans[f"dense:{name}"] = self._plan_dense(name, checkpoint, log)
            self._apply_sparse(plans["sparse"])
            for name in self.dense:
                self._apply_dense(name, plans[f"dense:{name}"])
        finally:
            self.db.commit()
        self.reconciled = {key: plan.report() for key, plan in plans.items()}
        # A checkpoint is due if anything was replayed or a copy is not stamped with the
        # current number (so that the next open takes the short way).
        self._dirty = bool(self.rebuilt) or any(
            plan.changes or plan.compared for plan in plans.values()
        )

    def _saved(self, key: str, load: Callable[[], _I], empty: Callable[[], _I]) -> _I:
        """The saved copy of a derived index, or an empty one (tag None, so reconciling
        compares every row and fills it from SQLite) when the file fails its checks."""
        try:
            return load()
        except StoreError as exc:
            self.rebuilt[key] = str(exc)
            saved = "" if self.read_only else "; the next checkpoint saves it"
            log.warning("%s: rebuilding it from the database%s", exc, saved)
            return empty()

    def _plan_sparse(self, checkpoint: int | None, log: _Once) -> Plan:
        return reconcile.plan(
            self.sparse,
            checkpoint,
            log,
            lambda rows: self._live_among("SELECT row FROM chunks WHERE row IN ({})", rows),
            lambda: self._live_rows("SELECT row FROM chunks ORDER BY row"),
        )

    def _plan_dense(self, name: str, checkpoint: int | None, log: _Once) -> Plan:
        return reconcile.plan(
            self.dense[name],
            checkpoint,
            log,
            lambda rows: self._live_among(
                "SELECT row FROM vectors WHERE field=? AND row IN ({})", rows, (name,)
            ),
            lambda: self._live_rows("SELECT row FROM vectors WHERE field=? ORDER BY row", (name,)),
        )

    def _live_among(self, sql: str, rows: np.ndarray, params: tuple[Any, ...] = ()) -> np.ndarray:
        """Those of `rows` that a `row IN ({})` query finds, sorted."""
        found: list[int] = []
        for part in _chunks(rows.tolist()):
            query = sql.format(",".join("?" * len(part)))
            found.extend(r[0] for r in self.db.execute(query, (*params, *part)))
        return np.sort(np.asarray(found, dtype=np.int64))

    def _apply_sparse(self, plan: Plan) -> None:
        if len(plan.stale):
            self.sparse.delete(plan.stale.tolist())
        for part in _chunks(plan.missing.tolist(), 5000):
            rows, tokens = self._tokens_for(part)
            self.sparse.add(rows, tokens)

    def _apply_dense(self, name: str, plan: Plan) -> None:
        index = self.dense[name]
        if len(plan.stale):
            index.delete(plan.stale)
        for part in _chunks(plan.missing.tolist(), 5000):
            rows, vecs = self._vectors_for(name, part, index.dim)
            index.add(rows, vecs)

    def _tokens_for(self, rows: Sequence[int]) -> tuple[list[int], list[list[str]]]:
        out_rows, out_tokens = [], []
        for part in _chunks(rows):
            marks = ",".join("?" * len(part))
            for row, tokens in self.db.execute(
                f"SELECT row, tokens FROM chunks WHERE row IN ({marks})", tuple(part)
            ):
                out_rows.append(row)
                out_tokens.append(tokens.split(" ") if tokens else [])
        return out_rows, out_tokens

    def _vectors_for(
        self, name: str, rows: Sequence[int], dim: int
    ) -> tuple[np.ndarray, np.ndarray]:
        out_rows: list[int] = []
        blobs: list[bytes] = []
        for part in _chunks(rows):
            marks = ",".join("?" * len(part))
            for row, blob in self.db.execute(
                f"SELECT row, vec FROM vectors WHERE field=? AND row IN ({marks})", (name, *part)
            ):
                out_rows.append(row)
                blobs.append(blob)
        vecs = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
        return np.asarray(out_rows, dtype=np.int64), vecs

    # ---- writing -----------------------------------------------------------------

    @_locked
    def source_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT source_id, content_hash FROM sources"))

    @_locked
    def write(self, batch: Batch) -> None:
        """Replace the batch's sources and insert its chunks, atomically.

        Either every document of the batch is stored (and searchable) or none is.
        """
        self._check_writable()
        tokens = batch.tokens or [self.analyzer.tokens(d.text) for d in batch.docs]
        if len(tokens) != len(batch.docs):
            raise ValueError("one token list per document is required")
        fields = self.fields()
        for name, fv in batch.vectors.items():
            if name not in fields:
                raise StoreError(f"unknown vector field {name!r}; call ensure_field first")
            if len(fv.positions) != len(fv.vectors) or fv.vectors.shape[1:] != (
                fields[name]["dim"],
            ):
                raise ValueError(f"field {name!r}: vectors do not match positions or dimension")
            if len(fv.positions) and (
                fv.positions.min() < 0 or fv.positions.max() >= len(batch.docs)
            ):
                raise ValueError(f"field {name!r}: positions outside the batch")
        now = time.time()
        with self.db:
            removed = self._delete_sources_sql([s.source_id for s in batch.sources])
            removed += self._delete_ids_sql([d.id for d in batch.docs])
            self.db.executemany(
                "INSERT OR REPLACE INTO sources(source_id, path, content_hash, title, metadata,"
                " indexed_at) VALUES (?,?,?,?,?,?)",
                [
                    (s.source_id, s.path, s.content_hash, s.title, json.dumps(s.metadata), now)
                    for s in batch.sources
                ],
            )
            # AUTOINCREMENT gives the batch rows above every row before it, in insertion
            # order: one executemany and one select instead of a statement per chunk
            (last,) = self.db.execute("SELECT COALESCE(MAX(row), 0) FROM chunks").fetchone()
            self.db.executemany(
                "INSERT INTO chunks(id, source_id, modality, text, source, media, span,"
                " metadata, tokens) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        doc.id,
                        doc.source_id,
                        str(doc.modality),
                        doc.text,
                        doc.source,
                        doc.media,
                        json.dumps(doc.span.to_dict()) if doc.span else None,
                        json.dumps(doc.metadata, ensure_ascii=False, default=str),
                        " ".join(doc_tokens),
                    )
                    for doc, doc_tokens in zip(batch.docs, tokens, strict=True)
                ],
            )
            rows = [
                r
                for (r,) in self.db.execute(
                    "SELECT row FROM chunks WHERE row > ? ORDER BY row", (last,)
                )
            ]
            if len(rows) != len(batch.docs):
                raise StoreError(f"{len(batch.docs)} chunks inserted but {len(rows)} rows found")
            for name, fv in batch.vectors.items():
                vecs = np.ascontiguousarray(fv.vectors, dtype=np.float32)
                self.db.executemany(
                    "INSERT INTO vectors(row, field, vec) VALUES (?,?,?)",
                    [
                        (rows[p], name, v.tobytes())
                        for p, v in zip(fv.positions.tolist(), vecs, strict=True)
                    ],
                )
            reconcile.record(self.db, removed + rows)
            faults.log_write(batch)
            faults.point("write.before_commit")
        faults.point("write.after_commit")
        # Derived indexes change only after the commit succeeded.
        self._drop_rows(removed)
        self.sparse.add(rows, tokens)
        row_array = np.asarray(rows, dtype=np.int64)
        for name, fv in batch.vectors.items():
            if len(fv.positions):
                self.dense[name].add(
                    row_array[fv.positions], np.asarray(fv.vectors, dtype=np.float32)
                )
        self._dirty = True

    @_locked
    def delete_sources(self, source_ids: Sequence[str]) -> int:
        """Delete whole sources (files or records) and their chunks; returns chunks removed."""
        self._check_writable()
        with self.db:
            removed = self._delete_sources_sql(source_ids)
            for part in _chunks(list(source_ids)):
                marks = ",".join("?" * len(part))
                self.db.execute(f"DELETE FROM sources WHERE source_id IN ({marks})", tuple(part))
            reconcile.record(self.db, removed)
            faults.log_delete_sources(source_ids)
            faults.point("delete.before_commit")
        faults.point("delete.after_commit")
        self._drop_rows(removed)
        return len(removed)

    @_locked
    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete single chunks by id; returns how many existed."""
        self._check_writable()
        with self.db:
            removed = self._delete_ids_sql(doc_ids)
            reconcile.record(self.db, removed)
            faults.log_delete(doc_ids)
            faults.point("delete.before_commit")
        faults.point("delete.after_commit")
        self._drop_rows(removed)
        return len(removed)

    def _delete_sources_sql(self, source_ids: Sequence[str]) -> list[int]:
        return self._delete_where("source_id", source_ids)

    def _delete_ids_sql(self, doc_ids: Sequence[str]) -> list[int]:
        return self._delete_where("id", doc_ids)

    def _delete_where(self, column: str, values: Sequence[str]) -> list[int]:
        removed: list[int] = []
        # By field: the vectors' key is (field, row), so `row IN` alone scanned the table,
        # 1.6 GB at a million chunks, once per 900 rows.
        fields = list(self.fields())
        for part in _chunks(list(values)):
            marks = ",".join("?" * len(part))
            rows = [
                r[0]
                for r in self.db.execute(
                    f"SELECT row FROM chunks WHERE {column} IN ({marks})", tuple(part)
                )
            ]
            for rpart in _chunks(rows):
                rmarks = ",".join("?" * len(rpart))
                for name in fields:
                    self.db.execute(
                        f"DELETE FROM vectors WHERE field=? AND row IN ({rmarks})",
                        (name, *rpart),
                    )
                self.db.execute(f"DELETE FROM chunks WHERE row IN ({rmarks})", tuple(rpart))
            removed.extend(rows)
        return removed

    def _drop_rows(self, rows: list[int]) -> None:
        if not rows:
            return
        self.sparse.delete(rows)
        array = np.asarray(rows, dtype=np.int64)
        for index in self.dense.values():
            index.delete(array)
        self._dirty = True

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")

    @_locked
    def checkpoint(self) -> None:
        """Save the derived indexes so the next open need not rebuild them."""
        if self.read_only or not self._dirty:
            return
        # Each copy is stamped with the number this checkpoint completes; the log is
        # dropped only once all are saved (see reconcile.py for why that is safe).
        number = (self._meta("checkpoint") or 0) + 1
        faults.point("checkpoint.start")
        self.sparse.save(self.path / SPARSE_FILE, tag=number)
        faults.point("checkpoint.after_sparse")
        for name, index in self.dense.items():
            index.save(self.path / f"{DENSE_PREFIX}{name}", tag=number)
        faults.point("checkpoint.after_dense")
        with self.db:
            reconcile.clear(self.db)
            self._set_meta("checkpoint", number)
        faults.point("checkpoint.after_commit")
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._dirty = False

    @_locked
    def close(self) -> None:
        if getattr(self, "db", None) is None:
            return
        self.checkpoint()
        self.db.close()
        self.db = None  # type: ignore[assignment]
        if self._lock_file is not None:
            self._lock_file.close()

    # ---- reading -----------------------------------------------------------------

    @_locked
    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    @_locked
    def count_sources(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM sources").fetchone()[0]

    def info(self) -> dict[str, Any]:
        with self._guarded():
            by_modality = dict(
                self.db.execute(
                    "SELECT modality, COUNT(*) FROM chunks GROUP BY modality"
                ).fetchall()
            )
            out = {
                "path": str(self.path),
                "sources": self.count_sources(),
                "chunks": len(self),
                "by_modality": by_modality,
                "fields": self.fields(),
                "analyzer": self.analyzer.to_dict(),
                "sparse_rows": len(self.sparse),
                "dense_rows": {name: len(index) for name, index in self.dense.items()},
            }
        # Walking the folder needs no lock, and may take a while on a large store.
        out["bytes_on_disk"] = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return out

    @_locked
    def sources(self) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT s.source_id, s.path, s.title, s.content_hash, COUNT(c.row)"
            " FROM sources s LEFT JOIN chunks c ON c.source_id = s.source_id"
            " GROUP BY s.source_id ORDER BY s.source_id"
        )
        keys = ("source_id", "path", "title", "content_hash", "chunks")
        return [dict(zip(keys, r, strict=True)) for r in cur]

    def documents(self, rows: Sequence[int]) -> list[Document]:
        """Documents for rows, in the order given (missing rows are skipped)."""
        found = self.documents_by_row(rows)
        return [found[int(r)] for r in rows if int(r) in found]

    @_locked
    def documents_by_row(self, rows: Sequence[int]) -> dict[int, Document]:
        found: dict[int, Document] = {}
        for part in _chunks(list(rows)):
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                "SELECT row, id, source_id, modality, text, source, media, span, metadata"
                f" FROM chunks WHERE row IN ({marks})",
                tuple(int(x) for x in part),
            ):
                found[r[0]] = Document(
                    id=r[1],
                    source_id=r[2],
                    modality=Modality(r[3]),
                    text=r[4],
                    source=r[5],
                    media=r[6],
                    span=Span.from_dict(json.loads(r[7])) if r[7] else None,
                    metadata=json.loads(r[8]),
                )
        return found

    @_locked
    def get(self, doc_ids: Sequence[str]) -> list[Document]:
        rows: list[int] = []
        for part in _chunks(list(doc_ids)):
            marks = ",".join("?" * len(part))
            rows.extend(
                r[0]
                for r in self.db.execute(
                    f"SELECT row FROM chunks WHERE id IN ({marks})", tuple(part)
                )
            )
        return self.documents(rows)

    def iter_documents(self, batch: int = 1000) -> Iterator[tuple[int, Document]]:
        last = 0
        while True:
            with self._guarded():  # per batch: the caller may take its time between them
                rows = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT row FROM chunks WHERE row > ? ORDER BY row LIMIT ?", (last, batch)
                    )
                ]
            if not rows:
                return
            yield from zip(rows, self.documents(rows), strict=True)
            last = rows[-1]

    @_locked
    def filter_rows(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Rows that match a metadata filter (sorted), or None when there is no filter."""
        if not filters:
            return None
        clause, params = to_sql(filters)
        return self._live_rows(f"SELECT row FROM chunks WHERE {clause} ORDER BY row", params)

    def filter_keys(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        return self.filter_rows(filters)  # a row is this store's key

    @property
    def media_root(self) -> Path:
        return self.path

    @_locked
    def vectors(self, name: str, rows: Iterable[int]) -> np.ndarray:
        dim = self.fields()[name]["dim"]
        wanted = [int(r) for r in rows]
        got_rows, vecs = self._vectors_for(name, wanted, dim)
        order = {int(r): i for i, r in enumerate(got_rows)}
        out = np.zeros((len(wanted), dim), dtype=np.float32)
        for i, r in enumerate(wanted):
            if r in order:
                out[i] = vecs[order[r]]
        return out

    @_locked
    def search_sparse(
        self,
        queries: Sequence[str],
        k: int,
        params: BM25Params,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        return [self._scored(c) for c in self.sparse_candidates(queries, k, params, filters)]

    @_locked
    def search_dense(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Scored]:
        return [self._scored(c) for c in self.dense_candidates(field, vectors, k, filters)]

    @_locked
    def sparse_candidates(
        self,
        queries: Sequence[str],
        k: int,
        params: BM25Params,
        filters: dict[str, Any] | None = None,
    ) -> list[Candidates]:
        allowed = self.filter_rows(filters)
        tokens = [self.analyzer.tokens(q) for q in queries]
        return [_candidates(r, s) for r, s in self.sparse.search_many(tokens, k, params, allowed)]

    @_locked
    def dense_candidates(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Candidates]:
        if field not in self.dense:
            raise StoreError(
                f"store {self.path} has no vector field {field!r} (index with it first)"
            )
        allowed = self.filter_rows(filters)
        with blas_threads(QUERY_BLAS_THREADS):
            rows, scores = self.dense[field].search(
                np.asarray(vectors, dtype=np.float32), k, allowed
            )
        return [_candidates(r, s) for r, s in zip(rows, scores, strict=True)]

    @_locked
    def candidate_ids(self, keys: Sequence[Hashable]) -> dict[Hashable, str]:
        found: dict[Hashable, str] = {}
        for part in _chunks(list(keys)):
            marks = ",".join("?" * len(part))
            found.update(
                self.db.execute(
                    f"SELECT row, id FROM chunks WHERE row IN ({marks})",
                    tuple(_rows(part)),
                ).fetchall()
            )
        return found

    def candidate_documents(self, keys: Sequence[Hashable]) -> dict[Hashable, Document]:
        return dict(self.documents_by_row(_rows(keys)))

    def _scored(self, found: Candidates) -> Scored:
        """Rows to documents; rows deleted meanwhile are dropped."""
        rows = _rows(found.keys)
        docs = self.documents_by_row(rows)
        return [(docs[r], s) for r, s in zip(rows, found.scores, strict=True) if r in docs]


class _Once:
    """A value computed on first call and kept: the change log, read once per open."""

    def __init__(self, compute: Callable[[], np.ndarray]) -> None:
        self._compute = compute
        self._value: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        if self._value is None:
            self._value = self._compute()
        return self._value


def _rows(keys: Sequence[Hashable]) -> list[int]:
    """Candidate keys of this store are row ids."""
    return [int(k) for k in keys]  # type: ignore[call-overload]


def _candidates(rows: np.ndarray, scores: np.ndarray) -> Candidates:
    """Search output as candidates; the padding (-1) of a short result is dropped."""
    keep = rows >= 0
    return Candidates(rows[keep].tolist(), scores[keep].tolist())


def default_store_path() -> Path:
    """$MMRAG_STORE, else ./.mmrag (a store per project folder, like .git)."""
    return Path(os.environ.get("MMRAG_STORE", ".mmrag"))
