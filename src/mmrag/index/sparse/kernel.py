"""The optional numba kernel: a whole batch of queries scored and ranked in compiled code.

With numba installed (a dev extra) large batches run this kernel, which calls the very tf
functions of bm25.py; otherwise the index scores with numpy (np.bincount). Both read the
segments in the same order, so they add up a document's score in the same order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.index.bm25 import VARIANTS, BM25Params

# "auto": the numba kernel for batches of at least NUMBA_MIN_BATCH queries, and for every
# batch once it is compiled in this process; "numba": always; "numpy": never. Importing
# numba and compiling the kernel takes about 3 s, as long as the numpy path needs for some
# 20,000 queries on a SciFact-sized index, so smaller batches are not worth it.
KERNEL = os.environ.get("MMRAG_SPARSE_KERNEL", "auto")
NUMBA_MIN_BATCH = 4096

# The kernel picks the variant's tf function by number; each distinct function once.
TF_CODES: dict[Callable[..., Any], int] = {}
for _variant in VARIANTS.values():
    TF_CODES.setdefault(_variant.tf, len(TF_CODES))

_kernel: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
_kernel_failed = False


def kernel_for(n_queries: int, params: BM25Params) -> Callable[..., Any] | None:
    """The compiled kernel if it should run this batch, else None (numpy path)."""
    if KERNEL == "numpy" or params.variant.tf not in TF_CODES or _kernel_failed:
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


def disable_kernel(exc: Exception) -> None:
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
    fns = [numba.njit(inline="always")(fn) for fn in TF_CODES]
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
