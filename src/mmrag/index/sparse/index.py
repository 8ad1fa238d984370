"""The sparse index: an inverted index over integer row ids, scored by bm25.py's variants.

Row ids are SQLite rowids: int64, arbitrary, never reused. Each document gets a dense
*position* in append order; the canonical data is doc-major (per position: row, length,
alive flag, and its postings as term id + term frequency). Searching reads term-major
segments (segments.py) built from it.

Adds only append to the doc-major arrays; the tail that no segment covers yet becomes a
new segment at the next search. Deletes clear the alive flag and update the statistics at
once; dead postings are dropped when their segment is next merged, and the whole index is
compacted when over half of its positions are dead. Collection statistics (N, avgdl, df)
always count live documents only, exactly as bm25s would on the live set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.index.bm25 import (
    BM25Params,
    cosine_doc_norms,
    idf_of,
    length_norm,
    negative_idf_floor,
    posting_scores,
    query_constants,
    query_weights,
)
from mmrag.index.sparse import kernel, persistence
from mmrag.index.sparse.buffers import Buffer, ranges
from mmrag.index.sparse.segments import Segments

_TAIL_DOCS = 1 << 16  # segment the tail once it holds this many documents ...
_TAIL_POSTINGS = 1 << 22  # ... or this many postings, even if nobody searches

Result = tuple[np.ndarray, np.ndarray]


def _empty() -> Result:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


class SparseIndex:
    """Inverted index over int64 row ids with BM25-family and TF-IDF scoring."""

    def __init__(self) -> None:
        self.tag: int | None = None  # the owner's stamp of the copy on disk (see save)
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._df = Buffer(np.int64)  # live document frequency per term id
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
        self._rows = Buffer.adopt(np.int64, rows)
        self._lengths = Buffer.adopt(np.int64, lengths)
        self._alive = Buffer(np.bool_, np.ones(len(rows), dtype=bool))
        self._ptr = Buffer.adopt(np.int64, ptr)
        self._post_terms = Buffer.adopt(np.int32, terms)
        self._post_tf = Buffer.adopt(np.int32, tf)
        self._n_live = len(rows)
        self._n_dead = 0
        self._total_len = int(lengths.sum())
        self._segs = Segments()
        self._indexed = 0  # positions below this are in segments and in the row index
        self._index_rows = np.empty(0, np.int64)  # sorted rows of positions < _indexed
        self._index_pos = np.empty(0, np.int64)
        self._recent: dict[int, int] = {}  # row -> position, for positions >= _indexed
        self._generation = 0
        self._cache: dict[Any, Any] = {}
        self._cache_generation = -1
        self._scratch: tuple[np.ndarray, ...] = ()  # the kernel's per-document work arrays

    def _install_segments(self, segs: Segments, indexed: int) -> None:
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
        gone = self._post_terms.view[ranges(ptr[positions], ptr[positions + 1])]
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
        idx = ranges(ptr[live], ptr[live + 1])
        new_ptr = np.zeros(len(live) + 1, dtype=np.int64)
        np.cumsum(ptr[live + 1] - ptr[live], out=new_ptr[1:])
        df = self._df.view
        used = df > 0
        remap = (np.cumsum(used) - 1).astype(np.int32)
        segs = self._segs.compacted(self._alive.view, live, remap)
        indexed = int(np.searchsorted(live, self._indexed))
        self._terms = [t for t, u in zip(self._terms, used.tolist(), strict=True) if u]
        self._vocab = {t: i for i, t in enumerate(self._terms)}
        self._df = Buffer(np.int64, df[used])
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
        compiled = kernel.kernel_for(n_q, params)
        if compiled is not None:
            segs = self._segs
            try:
                pos, scores, found = compiled(
                    ids, weights, bounds, constants,
                    np.asarray(segs.term_off, dtype=np.int64), segs.terms.view,
                    segs.start.view, segs.end.view, segs.pos.view, segs.tf.view, norm,
                    np.empty(0, dtype=bool) if mask is None else mask, self._rows.view, k,
                    kernel.TF_CODES[params.variant.tf], params.k1, params.delta,
                    params.variant.absent(params), *self._kernel_scratch(len(norm)),
                )  # fmt: skip
            except Exception as exc:  # numba compiles on first call; it is only a speed-up
                if kernel.KERNEL != "auto":
                    raise
                kernel.disable_kernel(exc)
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
        """Write the live documents to `path` atomically, `tag` kept for `load` (persistence.py)."""
        persistence.save(self, path, tag)

    @classmethod
    def load(cls, path: Path) -> SparseIndex:
        """Read an index written by `save`; StoreError if unreadable or inconsistent."""
        return persistence.load(cls, path)


def _as_rows(rows: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(rows)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"row ids must be a 1-D sequence of integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)
