"""Batch concurrent searches: one `retrieve_many` call serves every query that arrived
while the previous batch ran.

Encoding a query with a dense model costs about as much for one query as for a few
dozen, so under load the server encodes queries together instead of one by one. With
a single client there is no waiting: a query that finds the worker idle runs at once.
Queries are grouped by retriever and k, so each gets exactly what it asked for.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from mmrag.retrieve import Retriever
from mmrag.types import Query, Ranked

if TYPE_CHECKING:
    from mmrag.server.state import ServerState


@dataclass(slots=True)
class _Lane:
    retriever: Retriever
    k: int
    queue: asyncio.Queue[tuple[Query, asyncio.Future[Ranked]]] = field(
        default_factory=asyncio.Queue
    )
    task: asyncio.Task[None] | None = None


class SearchBatcher:
    def __init__(self, state: ServerState, max_batch: int = 64) -> None:
        self.state = state
        self.max_batch = max_batch
        self._lanes: dict[tuple[int, int], _Lane] = {}

    async def search(self, retriever: Retriever, query: Query, k: int) -> Ranked:
        key = (id(retriever), k)
        lane = self._lanes.get(key)
        if lane is None or lane.retriever is not retriever:
            lane = self._lanes[key] = _Lane(retriever, k)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._drain(lane))
        future: asyncio.Future[Ranked] = asyncio.get_running_loop().create_future()
        await lane.queue.put((query, future))
        return await future

    async def _drain(self, lane: _Lane) -> None:
        while True:
            first = await lane.queue.get()
            batch = [first]
            while len(batch) < self.max_batch and not lane.queue.empty():
                batch.append(lane.queue.get_nowait())
            live = [(q, f) for q, f in batch if not f.cancelled()]  # clients that gave up
            if not live:
                continue
            try:
                results = await run_in_threadpool(self._run, lane, [q for q, _ in live])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, f), ranked in zip(live, results, strict=True):
                if not f.done():
                    f.set_result(ranked)

    def _run(self, lane: _Lane, queries: list[Query]) -> list[Ranked]:
        with self.state.store_lock:
            return lane.retriever.retrieve_many(queries, lane.k)

    def close(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
