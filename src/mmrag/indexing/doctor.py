"""`mmrag doctor`: check an embedded store against itself, and repair what can be.

Checked: SQLite's own integrity check; each derived index file (its checksums, and its
rows against the database's: a difference the change log explains is replayed at the
next open, any other is a fault); media blobs no chunk or source refers to, and stale
temporary files; the recorded analyzer, vector fields and index config.

Repairing rebuilds every derived index from SQLite, deletes orphan blobs, and, when
SQLite itself is damaged, copies its readable rows into a new file (index/recover.py),
keeps the damaged one beside it, and says what was lost. Sources that lost chunks or
vectors are marked so that the next `mmrag index` of their files restores them.

This lives in indexing/ because it checks the index config, which index/ cannot import.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmrag.errors import MMRagError, StoreError
from mmrag.index import reconcile
from mmrag.index.analyzer import Analyzer
from mmrag.index.dense import DenseIndex
from mmrag.index.fields import FieldSpec
from mmrag.index.recover import Salvage, salvage
from mmrag.index.sparse import SparseIndex
from mmrag.index.store import DB_NAME, DENSE_PREFIX, SPARSE_FILE, EmbeddedStore, writer_lock
from mmrag.indexing.build import MEDIA_FOLDER
from mmrag.indexing.config import IndexConfig

OK, PENDING, PROBLEM = "ok", "pending", "problem"
# Folders of a store that hold blobs documents point to: the indexer's thumbnails and
# the server's uploads (server/state.py UPLOADS; the server is not importable from here).
UPLOADS = "uploads"
BLOB_FOLDERS = (MEDIA_FOLDER, UPLOADS)
_SHOWN = 3  # problems quoted per check; the rest are counted


@dataclass
class Finding:
    part: str  # sqlite, sparse, dense:<field>, blobs, config
    status: str  # OK, PENDING (the next open fixes it) or PROBLEM
    detail: str


@dataclass
class Report:
    store: Path
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    salvage: Salvage | None = None
    orphans: list[Path] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.status != PROBLEM for f in self.findings)

    def add(self, part: str, status: str, detail: str) -> None:
        self.findings.append(Finding(part, status, detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "healthy": self.healthy,
            "findings": [f.__dict__ for f in self.findings],
            "orphans": [str(f) for f in self.orphans],
            "repaired": self.repaired,
            "lost": None if self.salvage is None else self.salvage.to_dict(),
        }


def check(store: str | Path) -> Report:
    """Every check, reading only (a writer may have the store open meanwhile)."""
    path = Path(store).expanduser()
    if not (path / DB_NAME).is_file():
        raise StoreError(f"no mmrag store at {path}")
    report = Report(path)
    db = _check_sqlite(path / DB_NAME, report)
    if db is None:
        return report
    try:
        _check_derived(path, db, report)
        _check_blobs(path, db, report)
        _check_config(db, report)
    except sqlite3.DatabaseError as exc:  # a page integrity_check passed and reading did not
        report.add("sqlite", PROBLEM, f"reading failed: {exc}")
    finally:
        db.close()
    return report


def repair(store: str | Path, lock_timeout: float | None = 0.0) -> Report:
    """Check, then repair: salvage a damaged database, rebuild every derived index, and
    delete orphan blobs. Returns the report of the checks run after repairing, with what
    was done and (if SQLite was salvaged) what was lost."""
    path = Path(store).expanduser()
    before = check(path)
    done: list[str] = []
    lost: Salvage | None = None
    with writer_lock(path, lock_timeout):
        if any(f.part == "sqlite" and f.status == PROBLEM for f in before.findings):
            lost, kept = _salvage(path)
            done.append(
                f"copied the readable rows into a new {DB_NAME}; the damaged file is {kept}"
            )
        done.extend(_drop_derived(path))
        for orphan in before.orphans:
            _remove(orphan, path)
        if before.orphans:
            done.append(f"deleted {len(before.orphans)} orphan blob(s) and temporary file(s)")
    # The lock is let go for the store to take it: a writer that slips in meanwhile
    # rebuilds the indexes itself, which is all this open does.
    with EmbeddedStore(path, lock_timeout=lock_timeout) as st:
        counts = {key: plan["added"] for key, plan in st.reconciled.items()}
    done.append(
        "rebuilt the derived indexes from the database: "
        + ", ".join(f"{key} {n} rows" for key, n in counts.items())
    )
    after = check(path)
    after.repaired, after.salvage = done, lost
    return after


# ---- checks ------------------------------------------------------------------------------


def _check_sqlite(db_file: Path, report: Report) -> sqlite3.Connection | None:
    try:
        db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        report.add("sqlite", PROBLEM, f"cannot be opened: {exc}")
        return None
    try:
        lines = [r[0] for r in db.execute("PRAGMA integrity_check")]
        version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        report.add("sqlite", PROBLEM, f"damaged: {exc}")
        return None
    if lines != ["ok"]:
        db.close()
        shown = "; ".join(lines[:_SHOWN]) + (
            f" (+{len(lines) - _SHOWN} more)" if len(lines) > _SHOWN else ""
        )
        report.add("sqlite", PROBLEM, f"integrity check failed: {shown}")
        return None
    report.add("sqlite", OK, f"integrity check passed (schema {version[0] if version else None})")
    return db


def _check_derived(path: Path, db: sqlite3.Connection, report: Report) -> None:
    checkpoint = _meta(db, "checkpoint")
    logged = set(reconcile.logged_rows(db).tolist())
    chunks = {r for (r,) in db.execute("SELECT row FROM chunks")}
    _compare(report, "sparse", path / SPARSE_FILE, SparseIndex.load, chunks, logged, checkpoint)
    for name in _meta(db, "fields") or {}:
        rows = {r for (r,) in db.execute("SELECT row FROM vectors WHERE field=?", (name,))}
        folder = path / f"{DENSE_PREFIX}{name}"
        _compare(report, f"dense:{name}", folder, DenseIndex.load, rows, logged, checkpoint)
        _stale_files(folder, report)
    for tmp in path.glob(f".{SPARSE_FILE}.*.tmp"):  # a save that died before its rename
        report.orphans.append(tmp)


def _compare(
    report: Report,
    part: str,
    location: Path,
    load: Any,
    live: set[int],
    logged: set[int],
    checkpoint: int | None,
) -> None:
    exists = location.is_file() if part == "sparse" else (location / "manifest.json").is_file()
    if not exists:
        status = PENDING if live else OK
        report.add(part, status, f"no saved copy; opening builds it from {len(live)} rows")
        return
    try:
        index = load(location)
    except StoreError as exc:
        report.add(part, PROBLEM, f"fails its checks ({exc}); opening rebuilds it")
        return
    have = set(index.rows().tolist()) if len(index) else set()
    differ = have ^ live
    if not differ:
        report.add(part, OK, f"{len(have)} rows, as in the database")
    elif reconcile.log_covers(index.tag, checkpoint) and differ <= logged:
        report.add(part, PENDING, f"{len(differ)} rows behind the change log; opening replays them")
    elif not reconcile.log_covers(index.tag, checkpoint):
        report.add(part, PENDING, f"an older copy ({len(differ)} rows differ); opening compares it")
    else:
        unexplained = sorted(differ - logged)
        report.add(
            part,
            PROBLEM,
            f"{len(unexplained)} rows differ from the database outside the change log "
            f"(e.g. {unexplained[:_SHOWN]}); --repair rebuilds it",
        )


def _stale_files(folder: Path, report: Report) -> None:
    """Files of a dense folder its manifest does not name (a save that died midway)."""
    try:
        named = set(json.loads((folder / "manifest.json").read_text())["files"].values())
    except (OSError, ValueError, KeyError, TypeError):
        return
    for f in folder.iterdir():
        if f.name != "manifest.json" and f.name not in named:
            report.orphans.append(f)


def _check_blobs(path: Path, db: sqlite3.Connection, report: Report) -> None:
    root = path.resolve()
    referred: set[Path] = set()
    for sql in (
        "SELECT media FROM chunks WHERE media IS NOT NULL",
        "SELECT source FROM chunks WHERE source IS NOT NULL",
        "SELECT path FROM sources WHERE path IS NOT NULL",
    ):
        for (ref,) in db.execute(sql):
            if ref and "\x00" not in ref:
                referred.add((root / ref).resolve())
    blobs = [
        f
        for folder in BLOB_FOLDERS
        if (root / folder).is_dir()
        for f in (root / folder).rglob("*")
        if f.is_file() or f.is_symlink()
    ]
    orphans = [f for f in blobs if f.resolve() not in referred]
    stale = len(report.orphans)  # temporary files the derived checks found
    report.orphans.extend(orphans)
    report.add(
        "blobs",
        PROBLEM if report.orphans else OK,
        f"{len(blobs)} blob file(s), {len(orphans)} referred to by no document; "
        f"{stale} stale temporary file(s)" + ("; --repair deletes them" if report.orphans else ""),
    )


def _check_config(db: sqlite3.Connection, report: Report) -> None:
    problems = []
    try:
        Analyzer.from_dict(_meta(db, "analyzer") or {})
    except (MMRagError, TypeError, ValueError) as exc:
        problems.append(f"analyzer: {exc}")
    for name, record in (_meta(db, "fields") or {}).items():
        try:
            FieldSpec.from_dict(record)
        except (MMRagError, TypeError, ValueError, KeyError) as exc:
            problems.append(f"field {name!r}: {exc}")
    config = _meta(db, "index_config")
    if config is not None:
        try:
            IndexConfig.from_dict(config)
        except (MMRagError, TypeError, ValueError) as exc:
            problems.append(f"index config: {exc}")
    if problems:
        report.add("config", PROBLEM, "; ".join(problems))
    else:
        recorded = "recorded" if config is not None else "none recorded (defaults apply)"
        report.add("config", OK, f"analyzer and fields readable; index config {recorded}")


def _meta(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    try:
        return None if row is None else json.loads(row[0])
    except ValueError:
        return None


# ---- repairs -----------------------------------------------------------------------------


def _salvage(path: Path) -> tuple[Salvage, Path]:
    """Readable rows into a new database; the damaged one (and its WAL) kept aside."""
    db_file = path / DB_NAME
    fresh = path / f"{DB_NAME}.recovered"
    fresh.unlink(missing_ok=True)
    schema = resources.files("mmrag.index").joinpath("schema.sql").read_text()
    result = salvage(db_file, fresh, schema)
    kept = path / f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    # Same suffixes as SQLite's own, so the kept file still opens with its WAL.
    for suffix in ("-wal", "-shm", ""):
        part = path / f"{DB_NAME}{suffix}"
        if part.exists():
            part.rename(f"{kept}{suffix}")
    fresh.rename(db_file)
    return result, kept


def _drop_derived(path: Path) -> list[str]:
    dropped = []
    if (path / SPARSE_FILE).exists():
        (path / SPARSE_FILE).unlink()
        dropped.append(SPARSE_FILE)
    for folder in path.glob(f"{DENSE_PREFIX}*"):
        if folder.is_dir():
            shutil.rmtree(folder)
            dropped.append(folder.name)
    return [f"removed the saved derived indexes ({', '.join(dropped)})"] if dropped else []


def _remove(orphan: Path, root: Path) -> None:
    orphan.unlink(missing_ok=True)
    # Upload folders (uploads/<hash>/) left empty go too, never the blob folders themselves.
    parent = orphan.parent
    while parent != root and parent.name not in BLOB_FOLDERS and parent.is_relative_to(root):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
