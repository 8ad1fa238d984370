"""Term-major segments: for each term, the positions holding it and their tf.

Searching reads these, built from the index's doc-major arrays. Segments form a stack in
shared buffers and are merged log-structured by the index (the top segment joins the one
below once it reaches half its size), so a stream of small adds and searches costs
amortised O(n log n), never O(n^2).
"""

from __future__ import annotations

import numpy as np

from mmrag.index.sparse.buffers import Buffer, ranges

_SEGMENT_ARRAYS = ("terms", "start", "end", "pos", "tf")


class Segments:
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
        self.terms = Buffer(np.int64)
        self.start = Buffer(np.int64)
        self.end = Buffer(np.int64)
        self.pos = Buffer(np.int32)
        self.tf = Buffer(np.float32)

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

    def compacted(self, alive: np.ndarray, live: np.ndarray, term_remap: np.ndarray) -> Segments:
        """The same segments without dead positions, renumbered as compaction renumbers.

        Filtering keeps the postings term-major and in position order (both renumberings
        are monotone), so no sort is needed; a document stays in its segment, so every
        score is added up in the same order as before.
        """
        out = Segments()
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
        out.terms = Buffer.adopt(np.int64, term[starts])
        out.start = Buffer.adopt(np.int64, starts)
        out.end = Buffer.adopt(np.int64, np.append(starts[1:], len(pos)))
        out.pos = Buffer.adopt(np.int32, pos)
        out.tf = Buffer.adopt(np.float32, tf)
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
    ) -> Segments:
        """Segments read back by `load`; ValueError if they do not fit together.

        Not `thorough`: the posting positions are not scanned (see SparseIndex.load)."""
        out = cls()
        lo, hi, term_end, post_end = (row.tolist() for row in a["seg_table"])
        out.lo, out.hi = lo, hi
        out.term_off, out.post_off = [0, *term_end], [0, *post_end]
        dtypes = (np.int64, np.int64, np.int64, np.int32, np.float32)
        for name, dtype in zip(_SEGMENT_ARRAYS, dtypes, strict=True):
            setattr(out, name, Buffer.adopt(dtype, a[f"seg_{name}"]))
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
            idx = ranges(starts, ends)
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
