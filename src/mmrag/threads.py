"""Thread counts of the native libraries on the query path, set deliberately.

A pool of spin-waiting threads loses badly when another process holds a core: one
SciFact query against 5,183 vectors took 12 ms of OpenBLAS matrix-vector product on two
threads and 0.12 ms on one, on this 2-core machine at load 8 (timed in place on the
SciFact store of bench/query_latency.py, whose dense p50 with one thread is 10 ms,
encoding included). Counts are per process, so each search sets the
count it wants and puts the previous one back; setting costs about a microsecond.

Putting it back is not free everywhere: from a thread other than the main one, raising
OpenBLAS to two threads again woke a worker that spun through the next query's encoding
(a dense SciFact query in a worker thread took 20 ms of CPU for 10 ms of wall time, 10 ms
in the main thread). A server runs every search in worker threads, so it sets the count
once for the process (`set_blas_threads`) and the per-search change becomes a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

# Threads for BLAS inside a search (a handful of query rows against the stored vectors).
QUERY_BLAS_THREADS = 1


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple[Any, ...]:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a speed-up only: without it BLAS keeps its own count
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def set_blas_threads(n: int) -> None:
    """BLAS runs on `n` threads in this process from now on."""
    for lib in _blas_libraries():
        lib.set_num_threads(n)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS calls inside the block run on `n` threads."""
    libs = _blas_libraries()
    before = [lib.get_num_threads() for lib in libs]
    for lib, was in zip(libs, before, strict=True):
        if was != n:
            lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, was in zip(libs, before, strict=True):
            if was != n:
                lib.set_num_threads(was)
