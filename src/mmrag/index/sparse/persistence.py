"""The sparse index on disk: the arrays `save` writes and `load` reads back and checks.

These functions are the index's own `save` and `load`, kept apart from the in-memory
structure; they read and set its private state, as its methods would.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrag.errors import StoreError
from mmrag.index.arrayfile import ArrayFileError, is_array_file, read_arrays, write_arrays
from mmrag.index.sparse.buffers import Buffer
from mmrag.index.sparse.segments import Segments

if TYPE_CHECKING:
    from mmrag.index.sparse.index import SparseIndex

# 2 adds the term-major segments (and lengths, df), so that opening needs no sort; 1 is
# still read. At a million chunks, rebuilding segments on load took most of a minute.
# 3 holds the same arrays raw in an array file (arrayfile.py) instead of an npz, so that
# opening maps them: at a million chunks reading and checking the npz took 4.9 s.
FORMAT_VERSION = 3
_READABLE = (1, 2, 3)
# A save compacts first only past this share of dead positions; below it the alive flags
# are saved instead. Compacting rewrites every array in memory before the file is
# written: after deleting 10k of 100k chunks it was half of the save.
_SAVE_DEAD_SHARE = 0.25


def save(index: SparseIndex, path: Path, tag: int | None = None) -> None:
    """Write the live documents to `path` atomically (temp file, fsync, os.replace).

    `tag` is kept in the file for the owner (the store stamps its checkpoint number);
    `load` gives it back as `.tag`.
    """
    if index._n_dead > _SAVE_DEAD_SHARE * index._rows.size:
        index._compact()
    index._flush()  # every position in a segment, so loading has nothing to sort
    encoded = [t.encode("utf-8", "surrogatepass") for t in index._terms]
    vocab_ptr = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=vocab_ptr[1:])
    arrays = {
        "rows": index._rows.view,
        "ptr": index._ptr.view,
        "terms": index._post_terms.view,
        "tf": index._post_tf.view,
        "vocab": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "vocab_ptr": vocab_ptr,
        "lengths": index._lengths.view,
        "df": index._df.view,
        "alive": index._alive.view,
    } | index._segs.arrays()
    header = {"kind": "mmrag-sparse", "format": FORMAT_VERSION, "tag": tag}
    write_arrays(Path(path), arrays, header)
    index.tag = tag


def load(cls: type[SparseIndex], path: Path) -> SparseIndex:
    """Read an index written by `save`; StoreError if it is unreadable or inconsistent.

    Format 3 is memory-mapped, so opening costs little and serving keeps in memory the
    postings queries touch. Only checks that cost no pass over the postings run on it
    (sizes and end points); formats 1 and 2 (npz) are read whole and checked whole.
    """
    path = Path(path)
    try:
        if is_array_file(path):
            header, arrays = read_arrays(path)
            if header.get("kind") != "mmrag-sparse":
                raise ArrayFileError(f"not a sparse index: {header.get('kind')!r}")
            arrays["format"] = np.array([header.get("format", -1)], dtype=np.int64)
            tag = header.get("tag")
        else:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            tag = None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise StoreError(f"sparse index {path} cannot be read: {exc}") from exc
    try:
        index = _from_arrays(cls, arrays)
    except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise StoreError(f"sparse index {path} is corrupt: {exc}") from exc
    index.tag = tag if isinstance(tag, int) else None
    return index


def _from_arrays(cls: type[SparseIndex], a: dict[str, np.ndarray]) -> SparseIndex:
    version = int(a["format"][0])
    if version not in _READABLE:
        raise ValueError(f"format {version}, this mmrag reads {_READABLE}")
    # A mapped file (3) is checked without a pass over its postings, which would read
    # it all in: the point of mapping. Its writer renamed it into place after fsync.
    thorough = version < 3
    rows, ptr, terms, tf = a["rows"], a["ptr"], a["terms"], a["tf"]
    blob, vocab_ptr = a["vocab"].tobytes(), a["vocab_ptr"]
    n_terms = len(vocab_ptr) - 1
    if (
        len(ptr) != len(rows) + 1
        or ptr[0] != 0
        or ptr[-1] != len(terms)
        or len(tf) != len(terms)
        or np.any(np.diff(ptr) < 0)
        or vocab_ptr[-1] != len(blob)
        or (
            thorough
            and (
                (len(terms) and (terms.min() < 0 or terms.max() >= n_terms))
                or (len(tf) and tf.min() < 1)
                or len(np.unique(rows)) != len(rows)
            )
        )
    ):
        raise ValueError("inconsistent arrays")
    index = cls()
    bounds = vocab_ptr.tolist()
    index._terms = [
        blob[s:e].decode("utf-8", "surrogatepass")
        for s, e in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    index._vocab = {t: i for i, t in enumerate(index._terms)}
    if len(index._vocab) != n_terms:
        raise ValueError("duplicate terms in the vocabulary")
    if version == 1:
        index._df = Buffer(np.int64, np.bincount(terms, minlength=n_terms))
        index._reset_docs(rows=rows, ptr=ptr, terms=terms, tf=tf)
        index._flush()
        return index
    lengths, df = a["lengths"], a["df"]
    if len(lengths) != len(rows) or len(df) != n_terms:
        raise ValueError("lengths or df do not match the postings")
    if thorough and not np.array_equal(df, np.bincount(terms, minlength=n_terms)):
        raise ValueError("df does not match the postings")
    index._df = Buffer.adopt(np.int64, df)
    index._reset_docs(rows=rows, ptr=ptr, terms=terms, tf=tf, lengths=lengths)
    if "alive" in a and not a["alive"].all():  # format 3 may keep dead positions
        alive = a["alive"]
        if len(alive) != len(rows):
            raise ValueError("alive flags do not match the rows")
        index._alive = Buffer(np.bool_, alive)
        index._n_live = int(np.count_nonzero(alive))
        index._n_dead = len(rows) - index._n_live
        index._total_len = int(lengths[alive].sum())
    segs = Segments.from_arrays(a, len(rows), n_terms, thorough)
    index._install_segments(segs, len(rows))
    if not thorough and np.any(np.diff(index._index_rows) == 0):
        raise ValueError("a row appears twice")  # sorted by _install_segments anyway
    return index
