"""In-memory inverted index over integer row ids, scored by the variants in bm25.py.

Row ids are SQLite rowids: int64, arbitrary, never reused. Each document gets a dense
*position* in append order; the canonical data is doc-major (per position: row, length,
alive flag, and its postings as term id + term frequency). Searching reads term-major
*segments* built from it (for each term, the positions holding it and their tf).

Adds only append to the doc-major arrays; the tail that no segment covers yet becomes a
new segment at the next search. Segments form a stack in shared buffers and are merged
log-structured (the top segment joins the one below once it reaches half its size), so
a stream of small adds and searches costs amortised O(n log n), never O(n^2). Deletes
clear the alive flag and update the statistics at once; dead postings are dropped when
their segment is next merged, and the whole index is compacted when over half of its
positions are dead, or when a save finds over a quarter dead (below that the file keeps
the alive flags). Collection statistics (N, avgdl, df) always
count live documents only, exactly as bm25s would on the live set.

Scoring a query gathers its terms' postings, scores each with the variant's pure
function, sums per document and keeps the top k. With numba installed (a dev extra)
large batches run a compiled kernel that calls those same functions; otherwise numpy
does it with np.bincount. Not thread-safe: the owner (the store) serialises access.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, StoreError
from mmrag.index.arrayfile import ArrayFileError, is_array_file, read_arrays, write_arrays
from mmrag.index.bm25 import (
    VARIANTS,
    BM25Params,
    cosine_doc_norms,
    idf_of,
    length_norm,
    negative_idf_floor,
    posting_scores,
    query_constants,
    query_weights,
)

# 2 adds the term-major segments (and lengths, df), so that opening needs no sort; 1 is
# still read. At a million chunks, rebuilding segments on load took most of a minute.
# 3 holds the same arrays raw in an array file (arrayfile.py) instead of an npz, so that
# opening maps them: at a million chunks reading and checking the npz took 4.9 s.
FORMAT_VERSION = 3
_READABLE = (1, 2, 3)
_SEGMENT_ARRAYS = ("terms", "start", "end", "pos", "tf")
_TAIL_DOCS = 1 << 16  # segment the tail once it holds this many documents ...
_TAIL_POSTINGS = 1 << 22  # ... or this many postings, even if nobody searches
# A save compacts first only past this share of dead positions; below it the alive flags
# are saved instead. Compacting rewrites every array in memory before the file is
# written: after deleting 10k of 100k chunks it was half of the save.
_SAVE_DEAD_SHARE = 0.25

# "auto": the numba kernel for batches of at least NUMBA_MIN_BATCH queries, and for every
# batch once it is compiled in this process; "numba": always; "numpy": never. Importing
# numba and compiling the kernel takes about 3 s, as long as the numpy path needs for some
# 20,000 queries on a SciFact-sized index, so smaller batches are not worth it.
KERNEL = os.environ.get("MMRAG_SPARSE_KERNEL", "auto")
NUMBA_MIN_BATCH = 4096

Result = tuple[np.ndarray, np.ndarray]


def _empty() -> Result:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class _Buffer:
    """A growable 1-D array with amortised O(1) appends; `view` is the filled part."""

    __slots__ = ("data", "size")

    def __init__(self, dtype: Any, values: np.ndarray | None = None) -> None:
        values = np.empty(0, dtype=dtype) if values is None else np.asarray(values, dtype=dtype)
        self.data = np.empty(max(16, len(values)), dtype=dtype)
        self.data[: len(values)] = values
        self.size = len(values)

    @classmethod
    def adopt(cls, dtype: Any, values: np.ndarray) -> _Buffer:
        """A buffer over `values` itself when its dtype fits: loading need not copy."""
        buf = cls.__new__(cls)
        buf.data = np.ascontiguousarray(values, dtype=dtype)
        buf.size = len(buf.data)
        return buf

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]

    def extend(self, values: np.ndarray | Sequence[Any]) -> None:
        values = np.asarray(values, dtype=self.data.dtype)
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.view
            self.data = grown
        self.data[self.size : need] = values
        self.size = need

    def truncate(self, size: int) -> None:
        self.size = size


class _Segments:
    """A stack of term-major segments in shared buffers; merges only ever touch the top.

    Segment s covers positions lo[s]..hi[s]-1; its distinct terms are
    terms[term_off[s]:term_off[s+1]] (sorted), and term i's postings are
    pos/tf[start[i]:end[i]]. Keeping one set of flat arrays lets a compiled kernel read
    every segment without copying or per-call containers.
    """

    def __init__(self) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.term_off: list[int] = [0]
        self.post_off: list[int] = [0]
        self.terms = _Buffer(np.int64)
        self.start = _Buffer(np.int64)
        self.end = _Buffer(np.int64)
        self.pos = _Buffer(np.int32)
        self.tf = _Buffer(np.float32)

    def __len__(self) -> int:
        return len(self.lo)

    def nnz(self, s: int) -> int:
        return self.post_off[s + 1] - self.post_off[s]

    def push(self, lo: int, hi: int, terms: np.ndarray, pos: np.ndarray, tf: np.ndarray) -> None:
        """Add a segment from its postings (any order); they are sorted term-major here."""
        order = np.argsort(terms, kind="stable")  # radix sort for int32: linear time
        term_ids, counts = np.unique(terms, return_counts=True)
        ends = self.pos.size + np.cumsum(counts)
        self.terms.extend(term_ids)
        self.start.extend(ends - counts)
        self.end.extend(ends)
        self.pos.extend(pos[order])
        self.tf.extend(tf[order])
        self.lo.append(lo)
        self.hi.append(hi)
        self.term_off.append(self.terms.size)
        self.post_off.append(self.pos.size)

    def pop(self) -> None:
        self.lo.pop()
        self.hi.pop()
        self.term_off.pop()
        self.post_off.pop()
        for buf in (self.terms, self.start, self.end):
            buf.truncate(self.term_off[-1])
        self.pos.truncate(self.post_off[-1])
        self.tf.truncate(self.post_off[-1])

    def compacted(self, alive: np.ndarray, live: np.ndarray, term_remap: np.ndarray) -> _Segments:
        """The same segments without dead positions, renumbered as compaction renumbers.

        Filtering keeps the postings term-major and in position order (both renumberings
        are monotone), so no sort is needed; a document stays in its segment, so every
        score is added up in the same order as before.
        """
        out = _Segments()
        n_seg = len(self)
        if not n_seg:
            return out
        pos = self.pos.view
        keep = alive[pos]
        new_position = (np.cumsum(alive) - 1).astype(np.int32)
        entries = self.end.view - self.start.view
        term = np.repeat(self.terms.view.astype(np.int32), entries)[keep]
        seg = np.repeat(np.arange(n_seg, dtype=np.int32), np.diff(self.post_off))[keep]
        pos, tf, term = new_position[pos[keep]], self.tf.view[keep], term_remap[term]
        if len(pos):
            change = np.flatnonzero((np.diff(seg) != 0) | (np.diff(term) != 0)) + 1
            starts = np.concatenate([np.zeros(1, np.int64), change])
        else:
            starts = np.empty(0, np.int64)
        out.terms = _Buffer.adopt(np.int64, term[starts])
        out.start = _Buffer.adopt(np.int64, starts)
        out.end = _Buffer.adopt(np.int64, np.append(starts[1:], len(pos)))
        out.pos = _Buffer.adopt(np.int32, pos)
        out.tf = _Buffer.adopt(np.float32, tf)
        out.term_off = [0, *np.cumsum(np.bincount(seg[starts], minlength=n_seg)).tolist()]
        out.post_off = [0, *np.cumsum(np.bincount(seg, minlength=n_seg)).tolist()]
        out.lo = np.searchsorted(live, self.lo).tolist()
        out.hi = np.searchsorted(live, self.hi).tolist()
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """What `save` writes: the flat buffers and the segment table."""
        table = np.array([self.lo, self.hi, self.term_off[1:], self.post_off[1:]], np.int64)
        out = {f"seg_{name}": getattr(self, name).view for name in _SEGMENT_ARRAYS}
        return out | {"seg_table": table.reshape(4, len(self))}

    @classmethod
    def from_arrays(
        cls, a: dict[str, np.ndarray], n_docs: int, n_terms: int, thorough: bool = True
    ) -> _Segments:
        """Segments read back by `load`; ValueError if they do not fit together.

        Not `thorough`: the posting positions are not scanned (see SparseIndex.load)."""
        out = cls()
        lo, hi, term_end, post_end = (row.tolist() for row in a["seg_table"])
        out.lo, out.hi = lo, hi
        out.term_off, out.post_off = [0, *term_end], [0, *post_end]
        dtypes = (np.int64, np.int64, np.int64, np.int32, np.float32)
        for name, dtype in zip(_SEGMENT_ARRAYS, dtypes, strict=True):
            setattr(out, name, _Buffer.adopt(dtype, a[f"seg_{name}"]))
        terms, start, end, pos = out.terms.view, out.start.view, out.end.view, out.pos.view
        # Segments are ordered and disjoint; positions of empty documents may lie between.
        edges = np.asarray([lo, hi]).T.reshape(-1)
        if (
            np.any(np.diff(edges) < 0)
            or (len(hi) and (lo[0] < 0 or hi[-1] > n_docs))
            or np.any(np.diff(out.term_off) < 0)
            or np.any(np.diff(out.post_off) < 0)
            or out.term_off[-1] != len(terms)
            or out.post_off[-1] != len(pos)
            or len(start) != len(terms)
            or len(end) != len(terms)
            or len(out.tf.view) != len(pos)
            or (len(terms) and (terms.min() < 0 or terms.max() >= n_terms))
            or np.any(start[1:] != end[:-1])
            or (len(start) and (start[0] != 0 or end[-1] != len(pos)))
            or (thorough and len(pos) and (pos.min() < 0 or pos.max() >= n_docs))
        ):
            raise ValueError("inconsistent segments")
        return out

    def gather(
        self, ids: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings of the query terms: positions, tfs, and each posting's term weight.

        Segment by segment, and in `ids` order within one, as the kernel reads them, so both
        add up a document's score in the same order.
        """
        parts = []
        terms, start, end = self.terms.view, self.start.view, self.end.view
        for s in range(len(self)):
            lo, hi = self.term_off[s], self.term_off[s + 1]
            i = lo + np.minimum(np.searchsorted(terms[lo:hi], ids), hi - lo - 1)
            present = terms[i] == ids
            starts = np.where(present, start[i], 0)
            ends = np.where(present, end[i], 0)
            idx = _ranges(starts, ends)
            if len(idx):
                parts.append(
                    (self.pos.view[idx], self.tf.view[idx], np.repeat(weights, ends - starts))
                )
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty(0, np.int32), np.empty(0, np.float32), np.empty(0)
        pos, tf, w = zip(*parts, strict=True)
        return np.concatenate(pos), np.concatenate(tf), np.concatenate(w)


class SparseIndex:
    """Inverted index over int64 row ids with BM25-family and TF-IDF scoring."""

    def __init__(self) -> None:
        self.tag: int | None = None  # the owner's stamp of the copy on disk (see save)
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._df = _Buffer(np.int64)  # live document frequency per term id
        self._reset_docs(
            rows=np.empty(0, np.int64),
            ptr=np.zeros(1, np.int64),
            terms=np.empty(0, np.int32),
            tf=np.empty(0, np.int32),
        )

    def _reset_docs(
        self,
        rows: np.ndarray,
        ptr: np.ndarray,
        terms: np.ndarray,
        tf: np.ndarray,
        lengths: np.ndarray | None = None,
    ) -> None:
        """(Re)start from live documents only: used on creation, load and compaction.

        The arrays are taken over, not copied: callers pass arrays of their own.
        """
        if lengths is None:
            doc = np.repeat(np.arange(len(rows)), np.diff(ptr))
            lengths = np.bincount(doc, weights=tf, minlength=len(rows)).astype(np.int64)
        self._rows = _Buffer.adopt(np.int64, rows)
        self._lengths = _Buffer.adopt(np.int64, lengths)
        self._alive = _Buffer(np.bool_, np.ones(len(rows), dtype=bool))
        self._ptr = _Buffer.adopt(np.int64, ptr)
        self._post_terms = _Buffer.adopt(np.int32, terms)
        self._post_tf = _Buffer.adopt(np.int32, tf)
        self._n_live = len(rows)
        self._n_dead = 0
        self._total_len = int(lengths.sum())
        self._segs = _Segments()
        self._indexed = 0  # positions below this are in segments and in the row index
        self._index_rows = np.empty(0, np.int64)  # sorted rows of positions < _indexed
        self._index_pos = np.empty(0, np.int64)
        self._recent: dict[int, int] = {}  # row -> position, for positions >= _indexed
        self._generation = 0
        self._cache: dict[Any, Any] = {}
        self._cache_generation = -1
        self._scratch: tuple[np.ndarray, ...] = ()  # the kernel's per-document work arrays

    def _install_segments(self, segs: _Segments, indexed: int) -> None:
        """Take over segments covering positions below `indexed`; the rest is the tail."""
        self._segs = segs
        self._indexed = indexed
        rows = self._rows.view
        order = np.argsort(rows[:indexed], kind="stable")
        self._index_rows, self._index_pos = rows[:indexed][order], order.astype(np.int64)
        tail = range(indexed, self._rows.size)
        self._recent = dict(zip(rows[indexed:].tolist(), tail, strict=True))

    # --- size and rows -----------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    def rows(self) -> np.ndarray:
        """The live row ids, sorted."""
        self._flush()
        return self._index_rows[self._alive.view[self._index_pos]]

    def contains(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """For each row, whether it is live in the index (a bool array)."""
        return self._lookup(_as_rows(rows)) >= 0

    @property
    def vocabulary_size(self) -> int:
        """Distinct terms in live documents."""
        return int(np.count_nonzero(self._df.view))

    def _lookup(self, rows: np.ndarray) -> np.ndarray:
        """Live position of each row, -1 where the row is absent or deleted."""
        out = np.full(len(rows), -1, dtype=np.int64)
        if len(self._index_rows):
            i = np.minimum(np.searchsorted(self._index_rows, rows), len(self._index_rows) - 1)
            hit = self._index_rows[i] == rows
            out[hit] = self._index_pos[i[hit]]
        if self._recent:
            recent = self._recent
            for j, row in enumerate(rows.tolist()):
                p = recent.get(row)
                if p is not None:
                    out[j] = p
        found = np.flatnonzero(out >= 0)
        out[found[~self._alive.view[out[found]]]] = -1
        return out

    # --- writes ------------------------------------------------------------------------

    def add(self, rows: Sequence[int] | np.ndarray, docs: Sequence[Sequence[str]]) -> None:
        """Index analysed documents under `rows`; a row already present is replaced."""
        row_ids = _as_rows(rows)
        if len(row_ids) != len(docs):
            raise ValueError(f"add() got {len(row_ids)} rows but {len(docs)} documents")
        if not len(row_ids):
            return
        if len(np.unique(row_ids)) != len(row_ids):
            # The same row twice in one batch: the later document wins, as with two adds.
            _, last = np.unique(row_ids[::-1], return_index=True)
            keep = np.sort(len(row_ids) - 1 - last)
            row_ids = row_ids[keep]
            docs = [docs[i] for i in keep.tolist()]
        replaced = self._lookup(row_ids)
        self._kill(replaced[replaced >= 0])

        vocab, terms = self._vocab, self._terms
        post_terms: list[int] = []
        post_tf: list[int] = []
        distinct: list[int] = []
        lengths: list[int] = []
        for doc in docs:
            if isinstance(doc, str):
                raise TypeError("add() takes token lists (Analyzer.tokens(text)), not strings")
            counts = Counter(doc)  # counted in C; terms are looked up once each
            for term in counts:
                tid = vocab.get(term)
                if tid is None:
                    tid = vocab[term] = len(terms)
                    terms.append(term)
                post_terms.append(tid)
            post_tf.extend(counts.values())
            distinct.append(len(counts))
            lengths.append(len(doc))

        start = self._rows.size
        new_terms = np.asarray(post_terms, dtype=np.int32)
        self._ptr.extend(self._post_terms.size + np.cumsum(distinct, dtype=np.int64))
        self._rows.extend(row_ids)
        self._lengths.extend(lengths)
        self._alive.extend(np.ones(len(row_ids), dtype=bool))
        self._post_terms.extend(new_terms)
        self._post_tf.extend(post_tf)
        if len(terms) > self._df.size:
            self._df.extend(np.zeros(len(terms) - self._df.size, dtype=np.int64))
        self._df.view[:] += np.bincount(new_terms, minlength=len(terms))
        self._n_live += len(row_ids)
        self._total_len += sum(lengths)
        self._recent.update(zip(row_ids.tolist(), range(start, start + len(row_ids)), strict=True))
        self._generation += 1
        tail_postings = self._post_terms.size - int(self._ptr.view[self._indexed])
        if len(self._recent) >= _TAIL_DOCS or tail_postings >= _TAIL_POSTINGS:
            self._flush()

    def delete(self, rows: Sequence[int] | np.ndarray) -> None:
        """Remove rows; rows that are not present are ignored."""
        positions = self._lookup(np.unique(_as_rows(rows)))
        self._kill(positions[positions >= 0])

    def _kill(self, positions: np.ndarray) -> None:
        if not len(positions):
            return
        ptr = self._ptr.view
        gone = self._post_terms.view[_ranges(ptr[positions], ptr[positions + 1])]
        self._df.view[:] -= np.bincount(gone, minlength=self._df.size)
        self._alive.view[positions] = False
        self._n_live -= len(positions)
        self._n_dead += len(positions)
        self._total_len -= int(self._lengths.view[positions].sum())
        if self._recent:
            rows = self._rows.view[positions].tolist()
            for row, p in zip(rows, positions.tolist(), strict=True):
                if self._recent.get(row) == p:
                    del self._recent[row]
        self._generation += 1

    # --- segments ----------------------------------------------------------------------

    def _flush(self) -> None:
        """Bring segments and the row index up to date with every position added so far."""
        if self._n_dead * 2 > self._rows.size:
            self._compact()
        size = self._rows.size
        if self._indexed == size:
            return
        alive = self._alive.view
        old = alive[self._index_pos] if self._n_dead else slice(None)
        tail = np.arange(self._indexed, size, dtype=np.int64)
        tail = tail[alive[self._indexed : size]]
        rows = np.concatenate([self._index_rows[old], self._rows.view[tail]])
        pos = np.concatenate([self._index_pos[old], tail])
        order = np.argsort(rows, kind="stable")
        self._index_rows, self._index_pos = rows[order], pos[order]

        segs = self._segs
        self._push_segment(self._indexed, size)
        # Log-structured merging keeps O(log n) segments and rewrites each posting
        # O(log n) times: a segment that reaches half the size of the one below joins it.
        while len(segs) > 1 and 2 * segs.nnz(len(segs) - 1) >= segs.nnz(len(segs) - 2):
            lo, hi = segs.lo[-2], segs.hi[-1]
            segs.pop()
            segs.pop()
            self._push_segment(lo, hi)
        if len(segs) and segs.nnz(len(segs) - 1) == 0:
            segs.pop()
        self._indexed = size
        self._recent.clear()

    def _push_segment(self, lo: int, hi: int) -> None:
        ptr = self._ptr.view
        a, b = int(ptr[lo]), int(ptr[hi])
        terms = self._post_terms.view[a:b]
        tf = self._post_tf.view[a:b]
        doc = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(ptr[lo : hi + 1]))
        alive = self._alive.view[lo:hi]
        if not alive.all():
            keep = alive[doc - lo]
            terms, tf, doc = terms[keep], tf[keep], doc[keep]
        self._segs.push(lo, hi, terms, doc, tf)

    def _compact(self) -> None:
        """Drop deleted documents and unused terms; positions and term ids are renumbered."""
        live = np.flatnonzero(self._alive.view)
        ptr = self._ptr.view
        idx = _ranges(ptr[live], ptr[live + 1])
        new_ptr = np.zeros(len(live) + 1, dtype=np.int64)
        np.cumsum(ptr[live + 1] - ptr[live], out=new_ptr[1:])
        df = self._df.view
        used = df > 0
        remap = (np.cumsum(used) - 1).astype(np.int32)
        segs = self._segs.compacted(self._alive.view, live, remap)
        indexed = int(np.searchsorted(live, self._indexed))
        self._terms = [t for t, u in zip(self._terms, used.tolist(), strict=True) if u]
        self._vocab = {t: i for i, t in enumerate(self._terms)}
        self._df = _Buffer(np.int64, df[used])
        self._reset_docs(
            rows=self._rows.view[live].copy(),
            ptr=new_ptr,
            terms=remap[self._post_terms.view[idx]],
            tf=self._post_tf.view[idx].copy(),
            lengths=self._lengths.view[live].copy(),
        )
        self._install_segments(segs, indexed)

    # --- search ------------------------------------------------------------------------

    def search(
        self,
        query_tokens: Sequence[str],
        k: int,
        params: BM25Params = BM25Params(),  # noqa: B008 - frozen, so a shared default is safe
        allowed: np.ndarray | None = None,
    ) -> Result:
        """Top-k (rows int64, scores float32), best first; only rows scoring above 0.

        `allowed` is a sorted int64 array of the row ids the caller permits. Ties are
        broken by row id, so results are deterministic.
        """
        return self.search_many([query_tokens], k, params, allowed)[0]

    def search_many(
        self,
        queries: Sequence[Sequence[str]],
        k: int,
        params: BM25Params = BM25Params(),  # noqa: B008 - frozen, so a shared default is safe
        allowed: np.ndarray | None = None,
    ) -> list[Result]:
        """`search` for each token list of `queries`."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        self._flush()  # first: compaction renumbers term ids
        ids, counts, bounds = self._query_terms(queries)
        n_q = len(queries)
        if not self._n_live or not len(self._segs) or not len(ids):
            return [_empty() for _ in range(n_q)]
        query = np.repeat(np.arange(n_q), np.diff(bounds))
        floor = self._cached(
            ("floor", params.method, params.epsilon),
            lambda: negative_idf_floor(params, self._df.view, self._n_live),
        )
        idf = idf_of(params, self._df.view[ids], self._n_live, floor)
        weights = query_weights(params, counts, idf, query)
        constants = query_constants(params, weights, query, n_q)
        norm = self._norms(params)
        mask = self._mask(allowed)
        kernel = _kernel_for(n_q, params)
        if kernel is not None:
            segs = self._segs
            try:
                pos, scores, found = kernel(
                    ids, weights, bounds, constants,
                    np.asarray(segs.term_off, dtype=np.int64), segs.terms.view,
                    segs.start.view, segs.end.view, segs.pos.view, segs.tf.view, norm,
                    np.empty(0, dtype=bool) if mask is None else mask, self._rows.view, k,
                    _TF_CODES[params.variant.tf], params.k1, params.delta,
                    params.variant.absent(params), *self._kernel_scratch(len(norm)),
                )  # fmt: skip
            except Exception as exc:  # numba compiles on first call; it is only a speed-up
                if KERNEL != "auto":
                    raise
                _disable_kernel(exc)
            else:
                hit_rows = self._rows.view[pos]
                hit_scores = scores.astype(np.float32)
                return [(hit_rows[i, :n], hit_scores[i, :n]) for i, n in enumerate(found.tolist())]
        return [
            self._search_one(
                ids[bounds[i] : bounds[i + 1]],
                weights[bounds[i] : bounds[i + 1]],
                float(constants[i]),
                k,
                params,
                norm,
                mask,
            )
            for i in range(n_q)
        ]

    def _kernel_scratch(self, n: int) -> tuple[np.ndarray, ...]:
        """Per-document work arrays, kept between calls: the kernel leaves them cleared.

        Allocating and zeroing them per call cost more than the search itself for one
        query over a million documents (17 MB each time).
        """
        if not self._scratch or len(self._scratch[0]) != n:
            self._scratch = (
                np.zeros(n, dtype=np.float64),
                np.zeros(n, dtype=np.bool_),
                np.empty(n, dtype=np.int64),
            )
        return self._scratch

    def _search_one(
        self,
        ids: np.ndarray,
        weights: np.ndarray,
        constant: float,
        k: int,
        params: BM25Params,
        norm: np.ndarray,
        mask: np.ndarray | None,
    ) -> Result:
        if not len(ids):
            return _empty()
        pos, tf, w = self._segs.gather(ids, weights)
        if not len(pos):
            return _empty()
        contributions = posting_scores(params, tf, norm[pos], w)
        acc = np.bincount(pos, weights=contributions, minlength=len(norm))
        cand = np.flatnonzero(acc)
        if mask is not None:
            cand = cand[mask[cand]]
        scores = acc[cand] + constant
        keep = scores > 0
        cand, scores = cand[keep], scores[keep]
        if len(cand) > k:
            # Keep everything tied with the k-th score so ties break by row, deterministically.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            cand, scores = cand[keep], scores[keep]
        rows = self._rows.view[cand]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order].astype(np.float32)

    def _query_terms(
        self, queries: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Known query terms of all queries, flat: ids, counts in the query, query bounds."""
        vocab, df = self._vocab, self._df.view
        ids: list[int] = []
        counts: list[int] = []
        bounds = [0]
        for tokens in queries:
            if isinstance(tokens, str):
                raise TypeError("search() takes token lists (Analyzer.tokens(text)), not strings")
            found: dict[int, int] = {}
            for term in tokens:
                tid = vocab.get(term)
                if tid is not None:
                    found[tid] = found.get(tid, 0) + 1
            for tid, count in found.items():
                if df[tid] > 0:  # a term whose documents were all deleted
                    ids.append(tid)
                    counts.append(count)
            bounds.append(len(ids))
        return (
            np.asarray(ids, dtype=np.int64),
            np.asarray(counts, dtype=np.float64),
            np.asarray(bounds, dtype=np.int64),
        )

    def _norms(self, params: BM25Params) -> np.ndarray:
        """Per-position normalisation: BM25's length factor, or TF-IDF's vector norm."""
        if not params.variant.cosine:
            avgdl = self._total_len / self._n_live
            return self._cached(
                ("length", params.b), lambda: length_norm(self._lengths.view, avgdl, params.b)
            )

        def doc_norms() -> np.ndarray:
            size = self._rows.size
            doc = np.repeat(np.arange(size, dtype=np.int64), np.diff(self._ptr.view))
            idf = idf_of(params, self._df.view[self._post_terms.view], self._n_live)
            return cosine_doc_norms(self._post_tf.view, idf, doc, size)

        return self._cached(("cosine", params.method), doc_norms)

    def _cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Values that depend on the collection statistics, dropped whenever the index changes."""
        if self._cache_generation != self._generation:
            self._cache.clear()
            self._cache_generation = self._generation
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Positions that may be returned (alive and allowed); None when all may."""
        if allowed is None:
            return self._alive.view if self._n_dead else None
        positions = self._lookup(_as_rows(allowed))
        mask = np.zeros(self._rows.size, dtype=bool)
        mask[positions[positions >= 0]] = True
        return mask

    # --- persistence -------------------------------------------------------------------

    def save(self, path: Path, tag: int | None = None) -> None:
        """Write the live documents to `path` atomically (temp file, fsync, os.replace).

        `tag` is kept in the file for the owner (the store stamps its checkpoint number);
        `load` gives it back as `.tag`.
        """
        if self._n_dead > _SAVE_DEAD_SHARE * self._rows.size:
            self._compact()
        self._flush()  # every position in a segment, so loading has nothing to sort
        encoded = [t.encode("utf-8", "surrogatepass") for t in self._terms]
        vocab_ptr = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=vocab_ptr[1:])
        arrays = {
            "rows": self._rows.view,
            "ptr": self._ptr.view,
            "terms": self._post_terms.view,
            "tf": self._post_tf.view,
            "vocab": np.frombuffer(b"".join(encoded), dtype=np.uint8),
            "vocab_ptr": vocab_ptr,
            "lengths": self._lengths.view,
            "df": self._df.view,
            "alive": self._alive.view,
        } | self._segs.arrays()
        header = {"kind": "mmrag-sparse", "format": FORMAT_VERSION, "tag": tag}
        write_arrays(Path(path), arrays, header)
        self.tag = tag

    @classmethod
    def load(cls, path: Path) -> SparseIndex:
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
            index = cls._from_arrays(arrays)
        except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise StoreError(f"sparse index {path} is corrupt: {exc}") from exc
        index.tag = tag if isinstance(tag, int) else None
        return index

    @classmethod
    def _from_arrays(cls, a: dict[str, np.ndarray]) -> SparseIndex:
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
            index._df = _Buffer(np.int64, np.bincount(terms, minlength=n_terms))
            index._reset_docs(rows=rows, ptr=ptr, terms=terms, tf=tf)
            index._flush()
            return index
        lengths, df = a["lengths"], a["df"]
        if len(lengths) != len(rows) or len(df) != n_terms:
            raise ValueError("lengths or df do not match the postings")
        if thorough and not np.array_equal(df, np.bincount(terms, minlength=n_terms)):
            raise ValueError("df does not match the postings")
        index._df = _Buffer.adopt(np.int64, df)
        index._reset_docs(rows=rows, ptr=ptr, terms=terms, tf=tf, lengths=lengths)
        if "alive" in a and not a["alive"].all():  # format 3 may keep dead positions
            alive = a["alive"]
            if len(alive) != len(rows):
                raise ValueError("alive flags do not match the rows")
            index._alive = _Buffer(np.bool_, alive)
            index._n_live = int(np.count_nonzero(alive))
            index._n_dead = len(rows) - index._n_live
            index._total_len = int(lengths[alive].sum())
        segs = _Segments.from_arrays(a, len(rows), n_terms, thorough)
        index._install_segments(segs, len(rows))
        if not thorough and np.any(np.diff(index._index_rows) == 0):
            raise ValueError("a row appears twice")  # sorted by _install_segments anyway
        return index


def _as_rows(rows: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(rows)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"row ids must be a 1-D sequence of integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)


# --- the optional numba kernel -----------------------------------------------------------

# The kernel picks the variant's tf function by number; each distinct function once.
_TF_CODES: dict[Callable[..., Any], int] = {}
for _variant in VARIANTS.values():
    _TF_CODES.setdefault(_variant.tf, len(_TF_CODES))

_kernel: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
_kernel_failed = False


def _kernel_for(n_queries: int, params: BM25Params) -> Callable[..., Any] | None:
    """The compiled kernel if it should run this batch, else None (numpy path)."""
    if KERNEL == "numpy" or params.variant.tf not in _TF_CODES or _kernel_failed:
        return None
    if _kernel is None and KERNEL == "auto" and n_queries < NUMBA_MIN_BATCH:
        return None
    return _load_kernel()


def warm_up_kernel() -> bool:
    """Compile the numba kernel now (3-4 s) so that single queries use it too.

    Long-running processes (the server, benchmarks) call this once at start; a one-shot
    CLI search does not, since compiling costs more than thousands of numpy queries.
    """
    if KERNEL == "numpy" or _kernel_failed:
        return False
    return _load_kernel() is not None


def _disable_kernel(exc: Exception) -> None:
    global _kernel, _kernel_failed
    _kernel, _kernel_failed = None, True
    warnings.warn(
        f"numba kernel for sparse search failed, using numpy instead: {exc}",
        RuntimeWarning,
        stacklevel=3,
    )


def _load_kernel() -> Callable[..., Any] | None:
    global _kernel, _kernel_failed
    if _kernel is not None:
        return _kernel
    try:
        import numba
    except ImportError:
        if KERNEL == "numba":
            raise ConfigError(
                "MMRAG_SPARSE_KERNEL=numba but numba is not installed: pip install numba"
            ) from None
        _kernel_failed = True
        return None
    _kernel = _compile(numba)
    return _kernel


def _compile(numba: Any) -> Callable[..., Any]:
    """Build the batch kernel around jitted copies of bm25.py's tf functions."""
    fns = [numba.njit(inline="always")(fn) for fn in _TF_CODES]
    while len(fns) < 6:  # a fixed arity keeps the dispatch below simple
        fns.append(fns[0])
    f0, f1, f2, f3, f4, f5 = fns

    @numba.njit(inline="always")
    def tf_part(code: int, tf: float, norm: float, k1: float, delta: float) -> float:
        if code == 0:
            return f0(tf, norm, k1, delta)
        if code == 1:
            return f1(tf, norm, k1, delta)
        if code == 2:
            return f2(tf, norm, k1, delta)
        if code == 3:
            return f3(tf, norm, k1, delta)
        if code == 4:
            return f4(tf, norm, k1, delta)
        return f5(tf, norm, k1, delta)

    @numba.njit(inline="always")
    def worse(s_a: float, r_a: int, s_b: float, r_b: int) -> bool:
        """a ranks below b: lower score, or the same score and a larger row id."""
        return s_a < s_b or (s_a == s_b and r_a > r_b)

    @numba.njit
    def sift_down(heap_s, heap_p, size, rows):  # type: ignore[no-untyped-def]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= size:
                return
            right = child + 1
            if right < size and worse(
                heap_s[right], rows[heap_p[right]], heap_s[child], rows[heap_p[child]]
            ):
                child = right
            if not worse(heap_s[child], rows[heap_p[child]], heap_s[i], rows[heap_p[i]]):
                return
            heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
            heap_p[i], heap_p[child] = heap_p[child], heap_p[i]
            i = child

    @numba.njit
    def offer(heap_s, heap_p, size, k, score, p, rows):  # type: ignore[no-untyped-def]
        """Keep (score, p) if it is among the k best so far; a min-heap, worst on top."""
        if size < k:
            c = size
            heap_s[c] = score
            heap_p[c] = p
            while c > 0:
                parent = (c - 1) // 2
                if not worse(heap_s[c], rows[heap_p[c]], heap_s[parent], rows[heap_p[parent]]):
                    break
                heap_s[c], heap_s[parent] = heap_s[parent], heap_s[c]
                heap_p[c], heap_p[parent] = heap_p[parent], heap_p[c]
                c = parent
            return size + 1
        if worse(heap_s[0], rows[heap_p[0]], score, rows[p]):
            heap_s[0] = score
            heap_p[0] = p
            sift_down(heap_s, heap_p, size, rows)
        return size

    @numba.njit
    def search_batch(  # type: ignore[no-untyped-def]
        q_ids, q_w, q_bounds, q_const, term_off, terms, start, end, pos, tf, norm, mask, rows,
        k, code, k1, delta, absent, acc, seen, touched,
    ):  # fmt: skip
        # acc, seen, touched: per-document scratch, all-zero / all-False on entry, and
        # left so after each query (only the entries a query touched are reset).
        n_q = len(q_bounds) - 1
        n = len(norm)
        n_seg = len(term_off) - 1
        out_pos = np.zeros((n_q, k), dtype=np.int64)
        out_score = np.zeros((n_q, k), dtype=np.float64)
        out_n = np.zeros(n_q, dtype=np.int64)
        found = np.empty(len(q_ids) * n_seg, dtype=np.int64)
        found_w = np.empty(len(q_ids) * n_seg, dtype=np.float64)
        heap_s = np.empty(k, dtype=np.float64)
        heap_p = np.empty(k, dtype=np.int64)
        use_mask = len(mask) > 0
        for qi in range(n_q):
            # The query terms' posting lists: segment by segment, as the numpy path.
            n_found = 0
            total = 0
            for s in range(n_seg):
                seg_terms = terms[term_off[s] : term_off[s + 1]]
                for t in range(q_bounds[qi], q_bounds[qi + 1]):
                    i = np.searchsorted(seg_terms, q_ids[t])
                    if i < len(seg_terms) and seg_terms[i] == q_ids[t]:
                        found[n_found] = i + term_off[s]
                        found_w[n_found] = q_w[t]
                        n_found += 1
                        total += end[i + term_off[s]] - start[i + term_off[s]]
            # Few postings: remember which documents were hit; many: scan every document.
            dense = 4 * total >= n
            n_touched = 0
            for f in range(n_found):
                i = found[f]
                w = found_w[f]
                if dense:
                    for j in range(start[i], end[i]):
                        p = pos[j]
                        acc[p] += w * (tf_part(code, tf[j], norm[p], k1, delta) - absent)
                else:
                    for j in range(start[i], end[i]):
                        p = pos[j]
                        if not seen[p]:
                            seen[p] = True
                            touched[n_touched] = p
                            n_touched += 1
                        acc[p] += w * (tf_part(code, tf[j], norm[p], k1, delta) - absent)
            size = 0
            constant = q_const[qi]
            # One comparison, on the summed postings `a`, decides nearly every document: it
            # must beat the worst of the k kept so far (with a little slack: `offer` makes
            # the exact call). Until k are kept the floor is the smallest positive double:
            # a document not hit has a == 0, and a hit needs a > 0 to score above 0.
            floor = 5e-324
            for ti in range(n if dense else n_touched):
                p = ti if dense else touched[ti]
                a = acc[p]
                acc[p] = 0.0
                if a >= floor and not (use_mask and not mask[p]):
                    size = offer(heap_s, heap_p, size, k, a + constant, p, rows)
                    if size == k:
                        floor = max(5e-324, (heap_s[0] - constant) * (1.0 - 1e-12))
            if not dense:
                for ti in range(n_touched):
                    seen[touched[ti]] = False
            out_n[qi] = size
            while size > 0:  # pop the worst into the last free slot: the best ends first
                size -= 1
                out_score[qi, size] = heap_s[0]
                out_pos[qi, size] = heap_p[0]
                heap_s[0] = heap_s[size]
                heap_p[0] = heap_p[size]
                sift_down(heap_s, heap_p, size, rows)
        return out_pos, out_score, out_n

    return search_batch
