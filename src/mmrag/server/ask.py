"""Search and ask: JSON, or server-sent events for a streamed answer.

Events of a streamed answer, in order: `passages` (the numbered context), `token`
(text pieces), `answer` (the final text with resolved citations, stage timings). A
failure sends `error` with the reason and the passages retrieved so far.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi import Query as Param
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mmrag.errors import MMRagError
from mmrag.generate import Answer
from mmrag.generate.base import passage_dict, report_dict
from mmrag.pipeline import StageFailed
from mmrag.server.answering import (
    collect,
    failure_json,
    passages_json,
    sse,
    start_answer,
    timed_items,
)
from mmrag.server.auth import require_key
from mmrag.server.schemas import AskRequest, SearchRequest
from mmrag.server.state import ServerState
from mmrag.server.streaming import BackgroundIterator
from mmrag.types import Query, Ranked

router = APIRouter(prefix="/api", tags=["search"], dependencies=[Depends(require_key)])
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _state(request: Request) -> ServerState:
    return request.app.state.mmrag


def _query(text: str, filters: dict[str, Any] | None) -> Query:
    if not text.strip():
        raise HTTPException(422, "the query is empty")
    return Query(text=text, filters=filters)


def cut_query(text: str, limit: int) -> str:
    """`text` up to `limit` characters, without the word the limit falls in."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if text[limit].isspace():
        return head
    words = head.rsplit(maxsplit=1)
    return words[0] if len(words) == 2 else head


async def _search(state: ServerState, body: SearchRequest) -> JSONResponse:
    if body.k > state.settings.search_k_max:
        raise HTTPException(
            422, f"k={body.k} is over this server's limit of {state.settings.search_k_max}"
        )
    text = cut_query(body.query, state.settings.max_query_chars)
    query = _query(text, body.filters)
    retriever = state.built_retriever(body.retriever) or await run_in_threadpool(
        state.retriever, body.retriever
    )
    started = time.perf_counter()
    try:
        ranked = await asyncio.wait_for(
            state.batcher.search(retriever, query, body.k), state.settings.timeout
        )
    except TimeoutError:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "search timed out") from None
    # Plain JSON: returned as a dict, FastAPI would first validate it against a response
    # model and walk it with jsonable_encoder.
    return JSONResponse(
        {
            "query": text,  # what was searched
            "truncated": len(text) < len(body.query),
            "retriever": getattr(retriever, "name", body.retriever),
            "seconds": round(time.perf_counter() - started, 4),
            "hits": [passage_dict(i, h) for i, h in enumerate(ranked.hits, 1)],
            "reports": [report_dict(r) for r in ranked.reports],
        }
    )


@router.post("/search", summary="Search the store")
async def search(request: Request, body: SearchRequest) -> JSONResponse:
    return await _search(_state(request), body)


@router.get("/search", summary="Search the store (query string)")
async def search_get(
    request: Request,
    q: Annotated[str, Param(min_length=1)],
    k: Annotated[int, Param(ge=1)] = 10,
    retriever: str | None = None,
) -> JSONResponse:
    return await _search(_state(request), SearchRequest(query=q, k=k, retriever=retriever))


@router.post("/ask", summary="Answer a question with citations (JSON or server-sent events)")
async def ask(request: Request, body: AskRequest) -> Any:
    state = _state(request)
    query = _query(body.question, body.filters)
    pipeline = await run_in_threadpool(state.pipeline)
    worker = start_answer(state, pipeline, query, body.max_tokens)
    if body.stream:
        return StreamingResponse(
            _events(worker, state.settings.timeout),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    try:
        answer, _ = await collect(worker, state.settings.timeout)
    except StageFailed as exc:
        return JSONResponse(failure_json(exc), status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
    except TimeoutError:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"no answer within {state.settings.timeout:g} s; generation was stopped",
        ) from None
    return answer.to_dict()


async def _events(worker: BackgroundIterator[Any], timeout: float) -> AsyncIterator[bytes]:
    context: Ranked | None = None
    items = timed_items(worker, timeout)
    try:
        async for item in items:
            if isinstance(item, Ranked):
                context = item
                yield sse("passages", {"passages": passages_json(item)})
            elif isinstance(item, Answer):
                yield sse("answer", item.to_dict())
            else:
                yield sse("token", {"text": item})
    except StageFailed as exc:
        yield sse("error", failure_json(exc))
    except TimeoutError:
        yield sse(
            "error",
            {
                "detail": f"no answer within {timeout:g} s; generation was stopped",
                "passages": passages_json(context) if context else [],
            },
        )
    except MMRagError as exc:
        yield sse("error", {"detail": str(exc), "passages": []})
    except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band
        detail = f"internal error: {type(exc).__name__}: {exc}"
        passages = passages_json(context) if context else []
        yield sse("error", {"detail": detail, "passages": passages})
    finally:
        # Stop the worker even if this stream is closed before it was first read.
        worker.stop()
        await items.aclose()
