"""Run the pipeline for one question in a background worker, for /api/ask and /v1/chat.

Each answer takes one of the server's generation slots; it shares the store with
searches and uploads call by call (index/store.py). The items are the pipeline's: the
context (`Ranked`), text pieces, then the `Answer`. A failing stage arrives as
`StageFailed`, which carries the passages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from mmrag.generate import Answer
from mmrag.generate.base import passage_dict
from mmrag.pipeline import Pipeline, PipelineItem, StageFailed
from mmrag.server.state import ServerState
from mmrag.server.streaming import BackgroundIterator
from mmrag.types import Query, Ranked, StageReport


def _items(
    state: ServerState, pipeline: Pipeline, query: Query, max_tokens: int | None
) -> Iterator[PipelineItem]:
    stages: list[StageReport] = []
    ranked = pipeline.context(query, stages)
    yield ranked
    yield from pipeline.generate_stream(ranked, max_tokens, stages)


def start_answer(
    state: ServerState, pipeline: Pipeline, query: Query, max_tokens: int | None
) -> BackgroundIterator[PipelineItem]:
    return BackgroundIterator(
        lambda: _items(state, pipeline, query, max_tokens),
        slots=state.generation_slots,
        on_start=state.generation_started,
        on_end=state.generation_ended,
    )


def passages_json(ranked: Ranked) -> list[dict[str, Any]]:
    return [passage_dict(i, h) for i, h in enumerate(ranked.hits, 1)]


def failure_json(exc: StageFailed) -> dict[str, Any]:
    return {
        "detail": str(exc),
        "stage": exc.stage,
        "name": exc.name,
        "passages": passages_json(exc.ranked),
    }


async def collect(
    worker: BackgroundIterator[PipelineItem], timeout: float
) -> tuple[Answer, Ranked | None]:
    """Run to the end within `timeout` seconds (TimeoutError otherwise, with the worker stopped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    context: Ranked | None = None
    answer: Answer | None = None
    try:
        while True:
            try:
                item = await worker.next_item(max(deadline - loop.time(), 0.001))
            except StopAsyncIteration:
                break
            if isinstance(item, Ranked):
                context = item
            elif isinstance(item, Answer):
                answer = item
    finally:
        worker.stop()
    if answer is None:
        raise RuntimeError("the pipeline ended without an answer")
    return answer, context


async def timed_items(
    worker: BackgroundIterator[PipelineItem], timeout: float
) -> AsyncIterator[PipelineItem]:
    """The worker's items until it ends or `timeout` passes (TimeoutError then).

    Closing this iterator early (a client that went away) stops the worker.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            try:
                item = await worker.next_item(max(deadline - loop.time(), 0.001))
            except StopAsyncIteration:
                return
            yield item
    finally:
        worker.stop()


def sse(event: str | None, data: Any) -> bytes:
    """One server-sent event; `data` is JSON-encoded (or sent as is when a str)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str)
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n").encode()
