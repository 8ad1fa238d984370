"""Salvaging the readable rows of a damaged store database into a new one.

SQLite refuses a statement that reads a damaged page, and any page may be damaged, so
each table is read by key range, and a range that fails is split in two until what fails
is a single key: every row on a readable page comes back, and the loss is exactly the
rows on the pages that could not be read. (The `sqlite3` shell's `.recover` also digs
rows out of pages no longer linked into a b-tree; Python's sqlite3 has no binding for it
and the shell is not always installed, so this reads what the b-trees still reach.)

Which rows were lost is told by the chunks_by_source index, a b-tree of its own (source,
row) that usually survives the table's damage. It also gives the sources that lost
chunks; their content hash is cleared, so the next `mmrag index` reads those files again
and restores what was lost. Vectors are read the same way per field; a chunk whose vector
was on an unreadable page marks its source too. Row ids stay above every id ever used
(the AUTOINCREMENT counter is carried over), as derived indexes rely on ids never
coming back. The change log and the checkpoint number are not carried over: the derived
indexes are rebuilt from the new file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.types import Modality

# Single keys are tried one by one below this span; wider failing ranges are halved.
_POINT_SPAN = 64
_MODALITIES = {str(m) for m in Modality}


@dataclass
class Salvage:
    """What came across, and what could not."""

    meta_keys: list[str] = field(default_factory=list)
    meta_lost: bool = False  # some meta page was unreadable
    sources: int = 0
    sources_lost: int = 0  # sources named by surviving chunks whose record is gone
    chunks: int = 0
    chunks_lost: int = 0  # known from the source index; a lower bound if it was damaged too
    chunks_lost_exact: bool = True
    vectors: dict[str, int] = field(default_factory=dict)
    vectors_lost: dict[str, int] = field(default_factory=dict)  # chunks left without one
    sources_to_reindex: list[str] = field(default_factory=list)
    unreadable_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    header_restored: bool = False  # the file header was rewritten in a copy to read it

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta_keys": self.meta_keys,
            "meta_lost": self.meta_lost,
            "sources": self.sources,
            "sources_lost": self.sources_lost,
            "chunks": self.chunks,
            "chunks_lost": self.chunks_lost,
            "chunks_lost_exact": self.chunks_lost_exact,
            "vectors": self.vectors,
            "vectors_lost": self.vectors_lost,
            "sources_to_reindex": len(self.sources_to_reindex),
            "header_restored": self.header_restored,
            "unreadable_ranges": {k: v for k, v in self.unreadable_ranges.items() if v},
        }


def salvage(damaged: Path, target: Path, schema: str) -> Salvage:
    """Copy every readable row of `damaged` (a store database) into a new `target`."""
    src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    out = Salvage()
    fixed = target.with_name(target.name + ".header-restored")
    try:
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        # The first page's header is what says "SQLite": with it garbled nothing opens,
        # though every table page may be whole. Read a copy with its fixed fields restored.
        src.close()
        restore_header(damaged, fixed)
        out.header_restored = True
        src = sqlite3.connect(f"file:{fixed}?mode=ro&immutable=1", uri=True)
    dst = sqlite3.connect(target)
    try:
        dst.executescript(schema)
        with dst:
            _copy_meta(src, dst, out)
            source_ids = _copy_sources(src, dst, out)
            chunk_sources = _copy_chunks(src, dst, out)
            _copy_vectors(src, dst, out, chunk_sources)
            named = set(chunk_sources.values())
            out.sources_lost = len(named - source_ids)
            affected = sorted(set(out.sources_to_reindex) & source_ids)
            # An empty hash differs from every file's: the indexer reads them again.
            dst.executemany(
                "UPDATE sources SET content_hash='' WHERE source_id=?", ((s,) for s in affected)
            )
            out.sources_to_reindex = affected
            _carry_sequence(src, dst, chunk_sources)
        return out
    finally:
        src.close()
        dst.close()
        fixed.unlink(missing_ok=True)


_MAGIC = b"SQLite format 3\x00"


def restore_header(damaged: Path, copy: Path) -> None:
    """Copy `damaged` with the header fields every SQLite file has in common rewritten:
    the magic string, the payload fractions, and a page size that is not a power of two
    (guessed as 4096, SQLite's default and what mmrag's stores use)."""
    data = bytearray(damaged.read_bytes())
    if len(data) < 100:
        data.extend(b"\x00" * (100 - len(data)))
    data[:16] = _MAGIC
    page = int.from_bytes(data[16:18], "big")
    if not (page == 1 or (512 <= page <= 32768 and page & (page - 1) == 0)):
        data[16:18] = (4096).to_bytes(2, "big")
    data[18:20] = data[18:20] if set(data[18:20]) <= {1, 2} else b"\x01\x01"
    data[21:24] = bytes([64, 32, 32])
    copy.write_bytes(bytes(data))


def _rows_between(
    read: Callable[[int, int], list[tuple[Any, ...]]],
    lo: int,
    hi: int,
    failed: list[tuple[int, int]],
) -> Iterator[tuple[Any, ...]]:
    """Rows with keys lo..hi from `read`, splitting ranges that fail; `failed` gets the
    key ranges (inclusive) that still failed as single keys, merged."""
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        try:
            yield from read(a, b)
            continue
        except sqlite3.DatabaseError:
            pass
        if b - a < _POINT_SPAN:
            for key in range(a, b + 1):
                try:
                    yield from read(key, key)
                except sqlite3.DatabaseError:
                    if failed and failed[-1][1] == key - 1:
                        failed[-1] = (failed[-1][0], key)
                    else:
                        failed.append((key, key))
        else:
            mid = (a + b) // 2
            stack.extend([(mid + 1, b), (a, mid)])  # low half first: `failed` stays sorted


def _key_bounds(src: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> tuple[int, int]:
    """MIN and MAX of a key, or a wide guess when the b-tree's edge pages are unreadable."""
    try:
        lo, hi = src.execute(sql, params).fetchone()
        return (lo, hi) if lo is not None else (1, 0)
    except sqlite3.DatabaseError:
        return 1, 1 << 22


def _copy_meta(src: sqlite3.Connection, dst: sqlite3.Connection, out: Salvage) -> None:
    failed: list[tuple[int, int]] = []
    lo, hi = _key_bounds(src, "SELECT MIN(rowid), MAX(rowid) FROM meta")
    rows = _rows_between(
        lambda a, b: src.execute(
            "SELECT key, value FROM meta WHERE rowid BETWEEN ? AND ?", (a, b)
        ).fetchall(),
        lo,
        hi,
        failed,
    )
    for key, value in rows:
        if key == "checkpoint":  # derived indexes are rebuilt: no copy is current
            continue
        dst.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        out.meta_keys.append(key)
    out.meta_lost = bool(failed)
    out.unreadable_ranges["meta"] = failed


def _copy_sources(src: sqlite3.Connection, dst: sqlite3.Connection, out: Salvage) -> set[str]:
    failed: list[tuple[int, int]] = []
    lo, hi = _key_bounds(src, "SELECT MIN(rowid), MAX(rowid) FROM sources")
    cols = "source_id, path, content_hash, title, metadata, indexed_at"
    ids: set[str] = set()
    for row in _rows_between(
        lambda a, b: src.execute(
            f"SELECT {cols} FROM sources WHERE rowid BETWEEN ? AND ?", (a, b)
        ).fetchall(),
        lo,
        hi,
        failed,
    ):
        if not isinstance(row[0], str) or not _is_json(row[4]):
            continue  # a damaged cell that still parsed: counted with the lost
        dst.execute(f"INSERT OR REPLACE INTO sources({cols}) VALUES (?,?,?,?,?,?)", row)
        ids.add(row[0])
    out.sources = len(ids)
    out.unreadable_ranges["sources"] = failed
    return ids


def _copy_chunks(src: sqlite3.Connection, dst: sqlite3.Connection, out: Salvage) -> dict[int, str]:
    """Copy the chunks; returns {row: source_id} of those copied."""
    failed: list[tuple[int, int]] = []
    lo, hi = _key_bounds(src, "SELECT MIN(row), MAX(row) FROM chunks")
    hi = max(hi, _sequence(src))  # the counter still knows the top when an edge page is gone
    cols = "row, id, source_id, modality, text, source, media, span, metadata, tokens"
    copied: dict[int, str] = {}
    for r in _rows_between(
        lambda a, b: src.execute(
            f"SELECT {cols} FROM chunks WHERE row BETWEEN ? AND ?", (a, b)
        ).fetchall(),
        lo,
        hi,
        failed,
    ):
        if not _chunk_is_whole(r):
            continue
        try:
            dst.execute(f"INSERT INTO chunks({cols}) VALUES (?,?,?,?,?,?,?,?,?,?)", r)
        except sqlite3.IntegrityError:  # a damaged id that collides with another chunk's
            continue
        copied[r[0]] = r[2]
    out.chunks = len(copied)
    out.unreadable_ranges["chunks"] = failed
    # The source index says which rows existed, and whose they were.
    known, complete = _indexed_rows(src)
    lost = {row: source for row, source in known.items() if row not in copied}
    out.chunks_lost = len(lost)
    out.chunks_lost_exact = complete
    out.sources_to_reindex.extend(s for s in lost.values() if s is not None)
    return copied


def _indexed_rows(src: sqlite3.Connection) -> tuple[dict[int, str | None], bool]:
    """{row: source_id} from the chunks_by_source index, and whether it read to the end."""
    found: dict[int, str | None] = {}
    try:
        cur = src.execute(
            "SELECT row, source_id FROM chunks INDEXED BY chunks_by_source ORDER BY source_id"
        )
        while batch := cur.fetchmany(10_000):
            found.update(batch)
    except sqlite3.DatabaseError:
        return found, False
    return found, True


def _copy_vectors(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    out: Salvage,
    chunk_sources: dict[int, str],
) -> None:
    try:
        fields = json.loads(dst.execute("SELECT value FROM meta WHERE key='fields'").fetchone()[0])
    except (TypeError, ValueError):
        fields = {}
    if not chunk_sources:
        return
    top = max(chunk_sources)
    for name in fields:
        failed: list[tuple[int, int]] = []
        n = 0
        for row, vec in _rows_between(
            lambda a, b, f=name: src.execute(
                "SELECT row, vec FROM vectors WHERE field=? AND row BETWEEN ? AND ?", (f, a, b)
            ).fetchall(),
            1,
            top,
            failed,
        ):
            if row in chunk_sources and isinstance(vec, bytes):
                dst.execute("INSERT INTO vectors(row, field, vec) VALUES (?,?,?)", (row, name, vec))
                n += 1
        # A copied chunk whose key fell on an unreadable page may have lost its vector.
        orphaned = [r for a, b in failed for r in range(a, b + 1) if r in chunk_sources]
        out.vectors[name] = n
        out.vectors_lost[name] = len(orphaned)
        out.unreadable_ranges[f"vectors:{name}"] = failed
        out.sources_to_reindex.extend(chunk_sources[r] for r in orphaned)


def _carry_sequence(
    src: sqlite3.Connection, dst: sqlite3.Connection, chunk_sources: dict[int, str]
) -> None:
    """Keep the AUTOINCREMENT counter at or above every row id the old file used."""
    top = max(max(chunk_sources, default=0), _sequence(src))
    dst.execute("DELETE FROM sqlite_sequence WHERE name='chunks'")
    dst.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('chunks', ?)", (top,))


def _sequence(src: sqlite3.Connection) -> int:
    """The chunks' AUTOINCREMENT counter: the highest row id ever given (0 if unreadable)."""
    try:
        (seq,) = src.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
        return int(seq)
    except (sqlite3.DatabaseError, TypeError, ValueError):
        return 0


def _chunk_is_whole(r: tuple[Any, ...]) -> bool:
    """A readable cell can still hold damaged bytes: keep only chunks that decode."""
    row, doc_id, _, modality, text, *_, span, metadata, tokens = r
    return (
        isinstance(row, int)
        and isinstance(doc_id, str)
        and modality in _MODALITIES
        and isinstance(text, str)
        and isinstance(tokens, str)
        and (span is None or _is_json(span))
        and _is_json(metadata)
    )


def _is_json(value: Any) -> bool:
    try:
        json.loads(value)
    except (TypeError, ValueError):
        return False
    return True
