"""Batch concurrent searches: one `retrieve_many` call serves the queries that arrived
while earlier batches ran.

Encoding a query with a torch model costs about as much for one query as for a few
dozen, so under load the server encodes queries together instead of one by one. With
a single client there is no waiting: a query that finds a worker idle runs at once.
Queries are grouped by retriever and k, so each gets exactly what it asked for.

Up to `workers` batches of one lane run at once, in threads. Model calls (ONNX Runtime,
torch, tokenizers) release the GIL, so while one batch encodes its queries another
searches the store or encodes on the other core; the waiting queries are shared out
among the idle workers. One worker per lane would keep query encoding to a single core.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from mmrag.retrieve import Retriever
from mmrag.types import Query, Ranked

Waiting = tuple[Query, asyncio.Future[Ranked]]


@dataclass(slots=True)
class _Lane:
    retriever: Retriever
    k: int
    waiting: deque[Waiting] = field(default_factory=deque)
    workers: int = 0  # drain tasks alive
    busy: int = 0  # of them, those running a batch


class SearchBatcher:
    def __init__(self, workers: int, max_batch: int = 64) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be positive")
        self.workers = workers
        self.max_batch = max_batch
        self._lanes: dict[tuple[int, int], _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def search(self, retriever: Retriever, query: Query, k: int) -> Ranked:
        key = (id(retriever), k)
        lane = self._lanes.get(key)
        if lane is None or lane.retriever is not retriever:
            lane = self._lanes[key] = _Lane(retriever, k)
        future: asyncio.Future[Ranked] = asyncio.get_running_loop().create_future()
        lane.waiting.append((query, future))
        if lane.workers < self.workers:
            self._start(lane)
        return await future

    def _start(self, lane: _Lane) -> None:
        lane.workers += 1
        task = asyncio.create_task(self._drain(lane))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _take(self, lane: _Lane) -> list[Waiting]:
        """This worker's share of the waiting queries: an even split among idle workers."""
        idle = self.workers - lane.busy
        share = min(self.max_batch, -(-len(lane.waiting) // idle))
        batch = [lane.waiting.popleft() for _ in range(share)]
        if lane.waiting and lane.workers < self.workers:
            self._start(lane)  # the rest is someone else's share
        return [(q, f) for q, f in batch if not f.done()]  # clients that gave up are dropped

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.waiting:
                live = self._take(lane)
                if not live:
                    continue
                lane.busy += 1
                try:
                    results = await run_in_threadpool(_run, lane, [q for q, _ in live])
                finally:
                    lane.busy -= 1
                for (_, f), result in zip(live, results, strict=True):
                    if f.done():
                        continue
                    if isinstance(result, Exception):
                        f.set_exception(result)
                    else:
                        f.set_result(result)
        finally:
            lane.workers -= 1

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _run(lane: _Lane, queries: list[Query]) -> list[Ranked | Exception]:
    """The batch's results; if it fails, each query again alone, so that one bad query
    (a malformed filter, say) fails its own request and not the others batched with it."""
    try:
        return list(lane.retriever.retrieve_many(queries, lane.k))
    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
        if len(queries) == 1:
            return [exc]
    out: list[Ranked | Exception] = []
    for query in queries:
        try:
            out.append(lane.retriever.retrieve_many([query], lane.k)[0])
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            out.append(exc)
    return out
