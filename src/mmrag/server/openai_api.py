"""An OpenAI-compatible face: `GET /v1/models` and `POST /v1/chat/completions`.

Any chat client can use mmrag as a model: the last user message is the question, it
goes through the whole pipeline, and the reply is the answer with its numbered
citations, followed by a "Sources" list naming each cited passage. The full citation
records ride along in a `mmrag` field that OpenAI clients ignore.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mmrag.generate import Answer
from mmrag.pipeline import StageFailed
from mmrag.server.answering import collect, failure_json, sse, start_answer, timed_items
from mmrag.server.ask import SSE_HEADERS
from mmrag.server.auth import require_key
from mmrag.server.schemas import ChatCompletionRequest, ChatMessage
from mmrag.server.state import ServerState
from mmrag.server.streaming import BackgroundIterator
from mmrag.types import Query, Ranked

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_key)])
_STARTED = int(time.time())


def _state(request: Request) -> ServerState:
    return request.app.state.mmrag


def _text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text for p in message.content if p.type == "text" and p.text)


def question_of(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user" and _text(message).strip():
            return _text(message).strip()
    raise HTTPException(
        422,
        [{"loc": ["body", "messages"], "msg": "no user message with text", "type": "value_error"}],
    )


def history_of(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """The turns before the last user message, for rewriting a follow-up question."""
    last = max(
        (i for i, m in enumerate(messages) if m.role == "user" and _text(m).strip()), default=0
    )
    return [{"role": m.role, "content": _text(m)} for m in messages[:last]]


def sources_text(answer: Answer) -> str:
    """What follows the answer in a chat reply: how each sentence was checked, the sources."""
    from mmrag.generate.display import closest_passages_line, grounding_lines

    parts = []
    if answer.not_found:
        parts.append(closest_passages_line(answer))
    checked = grounding_lines(answer)
    if checked:
        parts.append("Checked against the passages:\n" + "\n".join(checked))
    if answer.citations:
        parts.append(
            "Sources:\n" + "\n".join(f"[{c.number}] {c.doc.citation()}" for c in answer.citations)
        )
    return "".join(f"\n\n{p}" for p in parts if p)


def _usage(answer: Answer) -> dict[str, int]:
    extra = answer.reports[-1].extra if answer.reports else {}
    prompt = int(extra.get("prompt_tokens") or 0)
    completion = int(extra.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _error(message: str, code: str, http: int, extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error" if http < 500 else "server_error",
            "code": code,
            **(extra or {}),
        }
    }
    return JSONResponse(body, status_code=http)


@router.get("/models", summary="The models this server answers as")
async def models(request: Request) -> dict[str, Any]:
    model_id = _state(request).settings.model_id
    return {
        "object": "list",
        "data": [{"id": model_id, "object": "model", "created": _STARTED, "owned_by": "mmrag"}],
    }


@router.post("/chat/completions", summary="OpenAI-compatible chat, answered through the pipeline")
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
    state = _state(request)
    if body.model != state.settings.model_id:
        return _error(
            f"model {body.model!r} does not exist; this server serves {state.settings.model_id!r}",
            "model_not_found",
            status.HTTP_404_NOT_FOUND,
        )
    question = question_of(body.messages)
    max_tokens = body.max_completion_tokens or body.max_tokens
    pipeline = await run_in_threadpool(state.pipeline)
    history = history_of(body.messages)
    asked = question
    if history:
        question = await run_in_threadpool(pipeline.standalone, history, question)
    worker = start_answer(state, pipeline, Query(text=question), max_tokens)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        return StreamingResponse(
            _chunks(worker, state.settings.timeout, completion_id, body.model),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    try:
        answer, _ = await collect(worker, state.settings.timeout)
    except StageFailed as exc:
        return _error(str(exc), exc.stage, 500, {"passages": failure_json(exc)["passages"]})
    except TimeoutError:
        return _error("no answer in time; generation was stopped", "timeout", 504)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text + sources_text(answer)},
                "finish_reason": "length" if answer.finish_reason == "length" else "stop",
            }
        ],
        "usage": _usage(answer),
        "mmrag": {
            "citations": [c.to_dict() for c in answer.citations],
            "dropped_citations": answer.dropped,
            "sentences": [s.to_dict() for s in answer.sentences],
            "grounding": answer.grounding(),
            "not_found": answer.not_found,
            "question": asked,
            "standalone_question": question,
        },
    }


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    return sse(
        None,
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
    )


async def _chunks(
    worker: BackgroundIterator[Any], timeout: float, completion_id: str, model: str
) -> AsyncIterator[bytes]:
    items = timed_items(worker, timeout)
    try:
        yield _chunk(completion_id, model, {"role": "assistant", "content": ""}, None)
        async for item in items:
            if isinstance(item, Ranked):
                continue
            if isinstance(item, Answer):
                tail = sources_text(item)
                if tail:
                    yield _chunk(completion_id, model, {"content": tail}, None)
                finish = "length" if item.finish_reason == "length" else "stop"
                yield _chunk(completion_id, model, {}, finish)
            else:
                yield _chunk(completion_id, model, {"content": item}, None)
    except StageFailed as exc:
        yield sse(
            None,
            {
                "error": {
                    "message": str(exc),
                    "type": "server_error",
                    "code": exc.stage,
                    "passages": failure_json(exc)["passages"],
                }
            },
        )
    except TimeoutError:
        yield sse(
            None,
            {
                "error": {
                    "message": "no answer in time; generation was stopped",
                    "type": "server_error",
                    "code": "timeout",
                }
            },
        )
    except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band
        yield sse(
            None,
            {
                "error": {
                    "message": f"{type(exc).__name__}: {exc}",
                    "type": "server_error",
                    "code": "internal",
                }
            },
        )
    finally:
        worker.stop()  # also when this stream is closed before it was first read
        await items.aclose()
    yield sse(None, "[DONE]")
