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

One idea per file: index.py (SparseIndex: the doc-major data, writes, merging, search),
segments.py (the term-major segments), buffers.py (growable arrays), persistence.py (the
file format, save and load) and kernel.py (the numba kernel; its MMRAG_SPARSE_KERNEL
setting is `mmrag.index.sparse.kernel.KERNEL`).
"""

from mmrag.index.sparse.index import Result, SparseIndex
from mmrag.index.sparse.kernel import NUMBA_MIN_BATCH, warm_up_kernel
from mmrag.index.sparse.persistence import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "NUMBA_MIN_BATCH", "Result", "SparseIndex", "warm_up_kernel"]
